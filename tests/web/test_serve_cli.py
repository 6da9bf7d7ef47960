"""`labctl serve` as a user starts it: a process on 127.0.0.1 that serves the login page and nothing else
without a login, and says so when no user exists yet."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_and_guards_every_page(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "serve", "--port", str(port), "--db",
                             str(tmp_path / "s.db")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "LABCTL_WEB_SECRET": "x" * 32})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "labctl serve did not answer"
                time.sleep(0.2)
        assert r.status_code == 200 and "Log in" in r.text
        assert httpx.get(f"http://127.0.0.1:{port}/runs").status_code == 401
        r = httpx.get(f"http://127.0.0.1:{port}/runs", headers={"accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"] == "/login"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "no web users yet: add one with `labctl users add NAME --role admin`" in err
    assert "Traceback" not in err
