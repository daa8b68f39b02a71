"""A job's command line run inside the test process: the same `run_main` exit codes and stderr
lines as `python -m jobs.…`, without paying ~6 s of interpreter start and imports per call.
Each test that uses it still runs its job once as a real subprocess, for the CLI wiring."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from jobs.common import run_main
from tests.conftest import REPO


def run_job(module: str, argv: list[str], capsys: pytest.CaptureFixture[str],
            in_subprocess: bool = False) -> subprocess.CompletedProcess:
    """`python -m module argv` → its exit code and output (a real subprocess if asked)."""
    if in_subprocess:
        return subprocess.run([sys.executable, "-m", module, *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    main = importlib.import_module(module).main
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        run_main(main, argv)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([module, *argv], ended.value.code, out, err)
