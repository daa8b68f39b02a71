"""`benchmarks/gpu_check.sh` on a machine without CUDA: every step runs on CPU at tiny sizes,
the table has a figure for each, and the skipped GPU figures are named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fallback is what this checks")
def test_gpu_check_runs_every_step_in_tiny_cpu_mode(tmp_path):
    # The 8-minute limit is for a GPU loan; a shared 2-core CI machine gets more time.
    env = {**os.environ, "SHOEMATCH_VENV": os.path.dirname(os.path.dirname(sys.executable)),
           "GPU_CHECK_LIMIT_S": "900"}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--tiny", "--work",
                             str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=960)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines()
             if line.startswith("| ") and not line.startswith("| step |")]
    steps = [line.split(" | ")[0][2:] for line in table]
    for expected in ("CriSp training", "augmentation", "re-index", "Serve query encoder",
                     "shard scan, index search on CPU", "shard scan, torch float32",
                     "shard scan, torch int8", "dense re-ranker", "cascade scan",
                     "cascade exact pass"):
        assert any(step.startswith(expected) for step in steps), (expected, steps)
    assert all(" | cpu | " in line and "FAILED" not in line for line in table)
    assert "tiny sizes" in result.stdout
    assert "skipped (no CUDA): NCCL training" in result.stdout
