"""benchmarks/gpu_check.py on a machine without CUDA: it says so and succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_without_cuda_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--limit", "8"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "No CUDA device found" in result.stdout
    assert "Nothing was run" in result.stdout
