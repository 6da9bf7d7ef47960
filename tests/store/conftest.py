"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL server started here.

The server is a throwaway cluster (initdb + pg_ctl in a temporary directory, a free localhost port, the
unix socket in that directory). initdb refuses to run as root, so as root the binaries run as the
`postgres` user (or `nobody`). Each test gets its own fresh database.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labctl.store import Store

PG_USER = "labctl"


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUNUSER = ("/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser")


def _runuser() -> str | None:
    """runuser by absolute path (root's PATH in a container or under sudo often lacks /usr/sbin)."""
    found = shutil.which("runuser")
    return found or next((p for p in RUNUSER if os.access(p, os.X_OK)), None)


def _as_user() -> tuple[list[str], str | None]:
    """Command prefix (and OS user) to run the PostgreSQL binaries unprivileged."""
    if os.geteuid() != 0:
        return [], None
    runuser = _runuser()
    if runuser is None:
        pytest.skip(f"running as root and runuser not found (looked on PATH and in {', '.join(RUNUSER)})")
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return [runuser, "-u", name, "--"], name
    pytest.skip("running as root and no unprivileged user (postgres, nobody) to run initdb as")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for this test session: yields a URL without the database name."""
    pytest.importorskip("psycopg", reason="psycopg (the postgres extra) is not installed")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql to run these")
    prefix, user = _as_user()
    base = Path(tempfile.mkdtemp(prefix="labctl-pg-"))
    base.chmod(0o755)
    data, sock, log = base / "data", base / "sock", base / "log"
    sock.mkdir()
    if user is not None:
        pw = pwd.getpwnam(user)
        for p in (base, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = _free_port()

    def run(*args: str) -> None:
        res = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120, cwd=base)
        if res.returncode:
            pytest.fail(f"{' '.join(args)} failed: {res.stdout}\n{res.stderr}\n{_tail(log)}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
    try:
        yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
            cwd=base,
        )
        shutil.rmtree(base, ignore_errors=True)


def _tail(path: Path) -> str:
    try:
        return path.read_text()[-2000:]
    except OSError:
        return ""


_db_numbers = itertools.count(1)


def fresh_pg_database(server: str) -> str:
    import psycopg

    name = f"t{next(_db_numbers)}_{os.getpid()}"
    conninfo = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@pytest.fixture(autouse=True)
def audit_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test has its own audit key, never the user's."""
    path = tmp_path / "keys" / "audit.key"
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(path))
    monkeypatch.delenv("LABCTL_DB", raising=False)
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labctl.db'}"
    return fresh_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def new_run() -> Callable[..., int]:
    """`new_run(store, steps=2, **overrides)` records a run with `steps` wait steps."""
    return make_run


def make_run(store: Store, *, steps: int = 2, sample_id: str | None = "LIN-001", **kw: object) -> int:
    """A run with `steps` wait steps."""
    args: dict = {
        "protocol_name": "Li-In alloy",
        "protocol_path": "protocols/li-in.yaml",
        "protocol_text": "labctl: 1\nname: Li-In alloy\n",
        "parameters": {"immersion_time": 60.0},
        "station_name": "sim-bench",
        "station_text": "name: sim-bench\n",
        "operator": "ada",
        "mode": "dry-run",
        "seed": 7,
        "sample_id": sample_id,
        "steps": [{"index": i, "kind": "wait", "params": {"duration": 1.0 + i}} for i in range(steps)],
    }
    args.update(kw)
    return store.create_run(**args)
