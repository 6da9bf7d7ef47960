"""User management on the web: only admins, only with the session's CSRF token; each change is the CLI's
audited call with the admin as the actor; a disabled user or a reset password ends that user's sessions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_helpers import login, post_login

from labctl.web import users
from labctl.web.app import create_app

HTML = {"accept": "text/html"}


@pytest.fixture
def admin_app(web_db, tmp_path: Path) -> Iterator[Any]:
    db = tmp_path / "users.db"
    with sqlite3.connect(web_db[0]) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    app = create_app(str(db), secret=b"u")
    yield app
    app.state.lab.close()


def _client(app: Any, name: str, password: str | None = None) -> tuple[TestClient, str]:
    c = TestClient(app)
    return c, login(c, name, password)


def _events(app: Any, kind: str) -> list[dict[str, Any]]:
    out = []
    for e in app.state.lab.store.events(None):
        if e["kind"] == kind:
            data = e["data"] if isinstance(e["data"], dict) else json.loads(e["data"])
            out.append({"actor": e["actor"], **data})
    return out


def test_only_admins_with_csrf_manage_users(admin_app) -> None:
    anon = TestClient(admin_app)
    assert anon.get("/users", headers=HTML, follow_redirects=False).status_code == 303
    assert anon.post("/users", data={"name": "eve", "role": "admin", "password": "x" * 12}).status_code == 401
    for name in ("vera", "otto"):
        c, csrf = _client(admin_app, name)
        assert c.get("/users", headers=HTML).status_code == 403
        assert 'href="/users"' not in c.get("/runs", headers=HTML).text
        r = c.post("/users", data={"name": "eve", "role": "admin", "password": "x" * 12, "csrf": csrf})
        assert r.status_code == 403
        assert c.post("/users/vera/disable", headers={"x-csrf-token": csrf}).status_code == 403
        assert c.post("/users/vera/password", data={"password": "y" * 12, "csrf": csrf}).status_code == 403
    ada, csrf = _client(admin_app, "ada")
    assert 'href="/users"' in ada.get("/runs", headers=HTML).text
    assert ada.post("/users", data={"name": "eve", "role": "admin", "password": "x" * 12}).status_code == 403
    assert ada.post("/users/vera/disable").status_code == 403  # no token
    assert ada.post("/users/vera/disable", headers={"x-csrf-token": "forged"}).status_code == 403
    assert "eve" not in [u["name"] for u in users.list_users(admin_app.state.lab.store)]
    assert _events(admin_app, "user.disabled") == []


def test_admin_adds_resets_and_disables_audited_and_sessions_end(admin_app) -> None:
    ada, csrf = _client(admin_app, "ada")
    page = ada.get("/users", headers=HTML).text
    for name in ("ada", "otto", "vera"):
        assert f"<td>{name}</td>" in page
    h = {"x-csrf-token": csrf}
    r = ada.post("/users", data={"name": "<b>x</b>", "role": "viewer", "password": "p" * 12}, headers=h)
    assert r.status_code == 400 and "user name &#39;&lt;b&gt;x&lt;/b&gt;&#39;" in r.text
    assert "<b>x" not in r.text
    r = ada.post("/users", data={"name": "nina", "role": "viewer", "password": "short"}, headers=h)
    assert r.status_code == 400 and "at least 10 characters" in r.text
    r = ada.post("/users", data={"name": "nina", "role": "root", "password": "n" * 12}, headers=h)
    assert r.status_code == 400 and "role &#39;root&#39;" in r.text
    r = ada.post("/users", data={"name": "nina", "role": "operator", "password": "nina-pass-123"}, headers=h)
    assert r.status_code == 200 and "user nina added as operator by ada" in r.text
    assert ada.post("/users", data={"name": "nina", "role": "viewer", "password": "n" * 12},
                    headers=h).status_code == 400  # exists
    nina, _ = _client(admin_app, "nina", "nina-pass-123")
    assert nina.get("/runs", headers=HTML).status_code == 200
    # reset: nina's session ends, the new password works, the old one does not
    r = ada.post("/users/nina/password", data={"password": "nina-new-pass-1"}, headers=h)
    assert r.status_code == 200 and "password of nina reset by ada" in r.text
    assert nina.get("/runs", headers=HTML, follow_redirects=False).status_code == 303
    assert post_login(TestClient(admin_app), {"username": "nina", "password": "nina-pass-123"},
                      follow_redirects=False).status_code == 401
    nina, _ = _client(admin_app, "nina", "nina-new-pass-1")
    # disable: her session ends and she cannot log in; an admin cannot disable themself
    r = ada.post("/users/nina/disable", headers=h)
    assert r.status_code == 200 and "user nina disabled by ada" in r.text
    assert nina.get("/runs", headers=HTML, follow_redirects=False).status_code == 303
    assert post_login(TestClient(admin_app), {"username": "nina", "password": "nina-new-pass-1"},
                      follow_redirects=False).status_code == 401
    r = ada.post("/users/ada/disable", headers=h)
    assert r.status_code == 400 and "cannot disable your own account" in r.text
    assert ada.post("/users/nobody/disable", headers=h).status_code == 400
    assert _events(admin_app, "user.added")[-1] == {"actor": "ada", "user": "nina", "role": "operator"}
    assert _events(admin_app, "user.password")[-1] == {"actor": "ada", "user": "nina"}
    assert _events(admin_app, "user.disabled")[-1] == {"actor": "ada", "user": "nina"}
    for e in _events(admin_app, "user.added") + _events(admin_app, "user.password"):
        assert "password" not in e and "hash" not in json.dumps(e)
    assert admin_app.state.lab.verify().ok
