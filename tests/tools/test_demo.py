"""``make demo`` (tools/demo.py, here at a tiny size) in a copy of the checkout: it leaves ``git status`` as it
found it, and its release cards and model-zoo listing name no absolute path."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ABSOLUTE = re.compile(r"(?:^|[\s`'\"(=])/[^\s/`'\"]+/")


def _git(cwd, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_demo_leaves_git_status_clean(tmp_path):
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", ROOT, str(clone))
    for name in _git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0"):  # the working tree's files
        src = os.path.join(ROOT, name)
        if name and os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.dirname(clone / name), exist_ok=True)
            shutil.copyfile(src, clone / name)
    before = _git(clone, "status", "--porcelain")
    subprocess.run([sys.executable, "tools/demo.py", "--train-frames", "2", "--val-frames", "1", "--scale", "0.03",
                    "--epochs", "1"], cwd=clone, check=True, capture_output=True, text=True, timeout=1200)
    assert _git(clone, "status", "--porcelain") == before
    written = [clone / "exp" / "demo" / "MODEL_ZOO.md",
               *(clone / "exp" / "demo" / "release").glob("*/README.md"),
               *(clone / "exp" / "demo" / "release").glob("*/metrics.json")]
    assert len(written) == 5
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert not ABSOLUTE.search(text) and str(tmp_path) not in text, path
