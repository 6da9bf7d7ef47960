"""Helpers of the queue tests: test data, `labctl` processes, waiting for a condition."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def labctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`labctl ARGS` as a process (this worktree's labctl via PYTHONPATH)."""
    return subprocess.run(
        [sys.executable, "-m", "labctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def spawn(*args: str, log: Path) -> subprocess.Popen:
    """A long-lived `labctl ARGS` (runner, worker) writing to `log`."""
    out = open(log, "ab")  # noqa: SIM115 - closed with the process by the caller's stop()
    return subprocess.Popen(
        [sys.executable, "-m", "labctl", *args], stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()
    )


def wait_until(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.25) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
