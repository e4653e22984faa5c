"""Suite-wide settings."""
import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n 2 on 2 cores: one torch thread per worker, or tiny ops slow down ~10x from oversubscription
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_deterministic_algorithms():
    """A trainer configured ``deterministic`` turns torch's deterministic algorithms on for its process, as a training
    run should; the next test gets the mode it had before (on CUDA the mode decides which kernels run)."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
