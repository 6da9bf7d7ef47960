"""User management for admins: list, add, disable, reset a password: the functions `labctl users add|passwd|
disable` call (`labctl.web.users`), so each change is audited in the hash chain with the admin's name as the
actor and ends the user's sessions where it should. Every action needs the admin role and the session's CSRF
token. An admin cannot disable their own account from here (the last admin would lock everyone out)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response

from labctl.store.errors import StoreError
from labctl.store.models import USER_ROLES
from labctl.web import users
from labctl.web.app import require_csrf, require_role
from labctl.web.pages import render

ADMIN = require_role("admin")


def _panel(request: Request, message: str = "", error: str = "", status: int = 200) -> Response:
    lab = request.app.state.lab
    return render(request, "_users.html", {"users": users.list_users(lab.store), "roles": USER_ROLES,
                                           "message": message, "error": error}, status)


def register(app: FastAPI) -> None:
    lab = app.state.lab

    @app.get("/users", response_class=HTMLResponse)
    def users_page(request: Request, admin: Any = Depends(ADMIN)) -> Response:
        return render(request, "users.html", {"users": users.list_users(lab.store), "roles": USER_ROLES,
                                              "message": "", "error": ""})

    @app.post("/users", response_class=HTMLResponse, dependencies=[Depends(require_csrf)])
    def add(request: Request, name: str = Form(...), role: str = Form(...), password: str = Form(...),
            admin: Any = Depends(ADMIN)) -> Response:
        try:
            users.add_user(lab.store, name, role, password, actor=admin.name)
        except StoreError as exc:
            return _panel(request, error=str(exc), status=400)
        return _panel(request, message=f"user {name} added as {role} by {admin.name}")

    @app.post("/users/{name}/password", response_class=HTMLResponse, dependencies=[Depends(require_csrf)])
    def reset_password(request: Request, name: str, password: str = Form(...),
                       admin: Any = Depends(ADMIN)) -> Response:
        try:
            users.set_password(lab.store, name, password, actor=admin.name)
        except StoreError as exc:
            return _panel(request, error=str(exc), status=400)
        return _panel(request, message=f"password of {name} reset by {admin.name}; their sessions ended")

    @app.post("/users/{name}/disable", response_class=HTMLResponse, dependencies=[Depends(require_csrf)])
    def disable(request: Request, name: str, admin: Any = Depends(ADMIN)) -> Response:
        if name == admin.name:
            return _panel(request, error="you cannot disable your own account (ask another admin, or use "
                                         "`labctl users disable` on the server)", status=400)
        try:
            users.disable_user(lab.store, name, actor=admin.name)
        except StoreError as exc:
            return _panel(request, error=str(exc), status=400)
        return _panel(request, message=f"user {name} disabled by {admin.name}; their sessions ended")
