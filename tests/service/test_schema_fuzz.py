"""schemathesis against the running server's OpenAPI spec: no request the spec allows (or breaks)
may get a server error. The suite runs the example and fuzzing phases with a few cases per
operation; docs/benchmarks.md has a longer run with the coverage phase."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_no_request_gets_a_server_error(server, tmp_path):
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(exe).exists():
        pytest.skip("schemathesis is not installed (the dev extra has it)")
    args = [exe, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error", "--phases", "examples,fuzzing",
            "--max-examples", "5", "--seed", "0", "--request-timeout", "120", "--no-color"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failure" not in done.stdout.split("SUMMARY")[-1], done.stdout[-2000:]
