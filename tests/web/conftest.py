"""A real SQLite store with real dry runs (one with hostile names) and three users, and a logged-in client
per role, for the web app's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed (pip install 'labctl[web]')")

from fastapi.testclient import TestClient
from web_helpers import HOSTILE, PASSWORDS, ROLES, login

import labctl
from labctl.web import users
from labctl.web.app import create_app


@pytest.fixture(scope="session")
def web_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(db path, id of the completed hostile run) with the three users added."""
    folder = tmp_path_factory.mktemp("web")
    proto = folder / "hostile.yaml"
    proto.write_text(HOSTILE)
    db = str(folder / "lab.db")
    with labctl.connect(db) as lab:
        run = lab.submit(proto, seed=5, sample=None, operator="mallory<i>").wait(180)
        assert run.state == "completed", run.provenance["exit_reason"]
        for name, role in ROLES.items():
            users.add_user(lab.store, name, role, PASSWORDS[name], actor="test")
        yield db, run.id


@pytest.fixture(scope="session")
def app(web_db: tuple[str, int]):
    application = create_app(web_db[0], secret=b"test-secret")
    yield application
    application.state.lab.close()


@pytest.fixture
def anon(app) -> Iterator[TestClient]:
    with TestClient(app, client=("10.0.0.9", 5000)) as c:
        yield c


@pytest.fixture
def as_role(app):
    """`as_role("operator")` -> (client, csrf) logged in as the user with that role."""
    clients: list[TestClient] = []

    def make(role: str) -> tuple[TestClient, str]:
        name = next(n for n, r in ROLES.items() if r == role)
        c = TestClient(app)
        clients.append(c)
        return c, login(c, name)

    yield make
    for c in clients:
        c.close()

