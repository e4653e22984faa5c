"""Run a test script of Triton kernels under Triton's CPU interpreter (``TRITON_INTERPRET=1``).

The interpreter is chosen when Triton kernels are defined, so the checks run in a subprocess with the variable
set. The script may ``import conftest`` from tests/models (its ``{tests}`` placeholder is that folder) and ends
by printing "ok". Triton is a test dependency (``.[test]``): without it the script fails rather than skips.
"""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_interpreted(script: str) -> None:
    env = dict(os.environ, TRITON_INTERPRET="1")
    code = script.format(tests=os.path.join(ROOT, "tests", "models"))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
