"""Small simulated datasets shared by the data tests (one per profile, generated once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pointcept_distill.data.simulator import generate

SMALL_SCALE = 0.1  # a tenth of the azimuth columns: a few thousand points per frame

REAL_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "real"  # see tests/fixtures/README.md


@pytest.fixture(scope="session")
def sim_root(tmp_path_factory: pytest.TempPathFactory):
    """``sim_root(profile)`` -> data root holding 3 train and 2 val small frames of that profile."""
    roots: dict[str, Path] = {}

    def make(profile: str) -> Path:
        if profile not in roots:
            root = tmp_path_factory.mktemp(profile)
            generate(profile, str(root), train=3, val=2, seed=7, scale=SMALL_SCALE)
            roots[profile] = root
        return roots[profile]

    return make


@pytest.fixture(scope="session")
def real_root() -> Path:
    if not REAL_ROOT.is_dir():
        pytest.fail(f"real LiDAR fixtures not found at {REAL_ROOT} (they are committed under tests/fixtures/)")
    return REAL_ROOT
