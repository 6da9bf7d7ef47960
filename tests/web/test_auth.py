"""Access: nothing without a login, control only for operators with the session's CSRF token, throttled
logins, session cookie flags, user management through the CLI."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from web_helpers import PASSWORDS, login, post_login

from labctl.cli import app as cli_app
from labctl.store.models import CONTROL_COMMANDS
from labctl.web import users
from labctl.web.app import COOKIE, create_app, require_csrf
from labctl.web.throttle import LoginThrottle


def _paths(app, run_id: int) -> list[tuple[str, str]]:
    """Every route of the app as (method, concrete path)."""
    out = []
    for r in app.routes:
        if isinstance(r, APIRoute):
            for m in r.methods:
                path = r.path.replace("{run_id}", str(run_id)).replace("{command}", "pause")
                out.append((m, re.sub(r"\{[a-z_]+\}", "1", path)))  # other ids, names: 1
    return out


def test_nothing_is_served_without_a_login(anon: TestClient, app, web_db) -> None:
    run_id = web_db[1]
    for method, path in _paths(app, run_id):
        if path == "/login":
            continue
        r = anon.request(method, path, follow_redirects=False)
        assert r.status_code in (401, 303), (method, path, r.status_code)
        if r.status_code == 303:
            assert r.headers["location"] == "/login"
    for path in ("/static/run.js", "/static/vendor/uPlot.iife.min.js", "/runs/1/series"):
        assert anon.get(path).status_code == 401
    page = anon.get("/runs", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert anon.get("/login").status_code == 200


def test_every_state_changing_route_requires_csrf(app) -> None:
    """No POST/PUT/PATCH/DELETE route (but the login form) is without the CSRF dependency."""
    changing = [r for r in app.routes if isinstance(r, APIRoute) and r.methods - {"GET", "HEAD"}]
    assert len(changing) >= 4
    for r in changing:
        if r.path == "/login":
            continue
        calls = {d.call for d in r.dependant.dependencies}
        assert require_csrf in calls, r.path


@pytest.mark.parametrize("command", CONTROL_COMMANDS)
def test_control_refused_without_login_for_a_viewer_and_without_csrf(anon, as_role, web_db, command) -> None:
    run_id = web_db[1]
    path = f"/runs/{run_id}/control/{command}"
    assert anon.post(path).status_code == 401
    viewer, vcsrf = as_role("viewer")
    r = viewer.post(path, headers={"x-csrf-token": vcsrf})
    assert r.status_code == 403 and "operator role" in r.text
    operator, ocsrf = as_role("operator")
    assert operator.post(path).status_code == 403                                    # no token
    assert operator.post(path, headers={"x-csrf-token": "x" + ocsrf}).status_code == 403  # wrong token
    assert operator.post(path, headers={"x-csrf-token": vcsrf}).status_code == 403   # another session's
    # with the token the store is asked: the run is completed, so it refuses (409), nothing is posted
    r = operator.post(path, headers={"x-csrf-token": ocsrf})
    assert r.status_code == 409 and "takes no more commands" in r.text


def test_verify_and_logout_need_csrf(as_role, web_db) -> None:
    c, csrf = as_role("viewer")
    assert c.post(f"/runs/{web_db[1]}/verify").status_code == 403
    assert c.post("/logout").status_code == 403
    assert c.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert c.get("/runs").status_code == 401  # the session row is gone


def test_login_sets_a_hardened_cookie_and_wrong_passwords_fail(app) -> None:
    with TestClient(app) as c:
        r = post_login(c, {"username": "vera", "password": "wrong-password"})
        assert r.status_code == 401 and "Wrong user name or password" in r.text
        r = post_login(c, {"username": "nobody", "password": "wrong-password"})
        assert r.status_code == 401
        r = post_login(c, {"username": "vera", "password": PASSWORDS["vera"]}, follow_redirects=False)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        token = cookie.split("=", 1)[1].split(";")[0]
        assert "." in token  # itsdangerous signature
    with TestClient(app) as forged:
        forged.cookies.set(COOKIE, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
        assert forged.get("/runs").status_code == 401


def test_login_is_throttled_per_user_and_per_address(web_db) -> None:
    app = create_app(web_db[0], secret=b"t")
    app.state.throttle = LoginThrottle(per_user=3, per_address=5, window_s=60)
    try:
        with TestClient(app, client=("10.1.1.1", 1)) as c:
            bad = {"username": "otto", "password": "bad-password"}
            for _ in range(3):
                assert post_login(c, bad).status_code == 401
            # the right password is refused now too: the user is locked for the window
            r = post_login(c, {"username": "otto", "password": PASSWORDS["otto"]})
            assert r.status_code == 429 and "Too many failed logins" in r.text
        with TestClient(app, client=("10.2.2.2", 1)) as c:  # per address: many names from one client
            for name in ("a1", "a2", "a3", "a4", "a5"):
                r = post_login(c, {"username": name, "password": "bad-password"})
                assert r.status_code == 401
            assert post_login(c, {"username": "ada", "password": PASSWORDS["ada"]}).status_code == 429
        with TestClient(app, client=("10.3.3.3", 1)) as c:  # another address, another (unlocked) user
            assert login(c, "ada")
    finally:
        app.state.lab.close()


def test_throttle_window_slides() -> None:
    t = LoginThrottle(per_user=2, per_address=100, window_s=10)
    t.failed("u", "a", now=0.0)
    t.failed("u", "a", now=1.0)
    assert t.blocked("u", "a", now=2.0) == pytest.approx(8.0)
    assert t.blocked("u", "a", now=10.5) == 0.0
    t.failed("u", "a", now=11.0)
    t.succeeded("u")
    assert t.blocked("u", "a", now=11.5) == 0.0


def test_users_cli_add_passwd_disable(tmp_path, app) -> None:
    db = str(tmp_path / "u.db")
    runner = CliRunner()
    add = ["users", "add", "--password-stdin", "--db", db]
    r = runner.invoke(cli_app, [*add, "carol", "--role", "operator"], input="carol-pass-1234\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, [*add, "carol"], input="x" * 12 + "\n")
    assert r.exit_code != 0 and "exists" in str(r.exception)
    r = runner.invoke(cli_app, ["users", "add", "dan", "--role", "root", "--password-stdin", "--db", db],
                      input="dan-pass-12345\n")
    assert r.exit_code != 0 and "viewer, operator, admin" in str(r.exception)
    r = runner.invoke(cli_app, ["users", "add", "dan", "--password-stdin", "--db", db], input="short\n")
    assert r.exit_code != 0 and "at least 10" in str(r.exception)
    web = create_app(db, secret=b"s")
    try:
        with TestClient(web) as c:
            login(c, "carol", "carol-pass-1234")
            r = runner.invoke(cli_app, ["users", "passwd", "carol", "--password-stdin", "--db", db],
                              input="carol-new-pass-1\n")
            assert r.exit_code == 0, r.output
            assert c.get("/runs").status_code == 401  # a new password ends the sessions
            login(c, "carol", "carol-new-pass-1")
            assert runner.invoke(cli_app, ["users", "disable", "carol", "--db", db]).exit_code == 0
            assert c.get("/runs").status_code == 401
            r = post_login(c, {"username": "carol", "password": "carol-new-pass-1"})
            assert r.status_code == 401
        stored = users.list_users(web.state.lab.store)
        assert stored == [{"name": "carol", "role": "operator", "disabled": True}]
        kinds = [e["kind"] for e in web.state.lab.store.events(None) if e["kind"].startswith("user.")]
        assert kinds == ["user.added", "user.password", "user.disabled"]
        assert all("argon2" not in e["data"] for e in web.state.lab.store.events(None))
        assert web.state.lab.store.verify(None).ok
    finally:
        web.state.lab.close()


def test_login_form_needs_its_own_token(app) -> None:
    """Login CSRF: a POST without the form's token (or with another form's) logs nobody in."""
    with TestClient(app) as c:
        form = {"username": "vera", "password": PASSWORDS["vera"]}
        r = c.post("/login", data=form, follow_redirects=False)
        assert r.status_code == 403 and COOKIE + "=" not in r.headers.get("set-cookie", "")
        with TestClient(app) as other:
            foreign = other.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        c.get("/login")
        assert c.post("/login", data={**form, "csrf": foreign}, follow_redirects=False).status_code == 403
        assert post_login(c, form, follow_redirects=False).status_code == 303


def test_htmx_errors_are_escaped_html(as_role, web_db) -> None:
    """An error HTMX swaps into the page is escaped text, whatever the request put in it."""
    c, csrf = as_role("operator")
    r = c.post(f"/runs/{web_db[1]}/control/<img src=x onerror=alert(1)>",
               headers={"x-csrf-token": csrf, "hx-request": "true"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<img" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
