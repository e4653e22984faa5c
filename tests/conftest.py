"""Suite-wide settings."""
import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n 2 on 2 cores: one torch thread per worker, or tiny ops slow down ~10x from oversubscription
    torch.set_num_threads(1)
