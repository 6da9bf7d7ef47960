"""The FastAPI app of `labctl serve`: login, sessions, CSRF and the security headers; pages in `pages.py`.

Every request but the login form (and its stylesheet) needs a session: a signed cookie (HttpOnly,
SameSite=Lax, Secure when served over https) naming a session row in the store. Every state-changing
request (any method but GET/HEAD) must also carry the session's CSRF token, as the `X-CSRF-Token` header
(HTMX sends it from `hx-headers` on <body>) or a `csrf` form field; `require_csrf` is a dependency of each
such route and `tests/web` checks that no POST route is without it. Templates autoescape everything, and
the Content-Security-Policy allows scripts from this server only, so an injected `<script>` cannot run even
where escaping were forgotten.
"""

from __future__ import annotations

import hmac
import html
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from labctl.web import users
from labctl.web.figures import FigureCache
from labctl.web.throttle import LoginThrottle

HERE = Path(__file__).parent
COOKIE = "labctl_session"
LOGIN_COOKIE = "labctl_login"  # the login form's own CSRF token (no session yet): double-submit, signed
LOGIN_FORM_SECONDS = 3600
PUBLIC = frozenset({"/login", "/static/style.css"})
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")


def templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      auto_reload=False)
    return Jinja2Templates(env=env)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class AuthMiddleware(BaseHTTPMiddleware):
    """Looks the session up for every request; without one, pages redirect to /login and the rest get 401."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        app = request.app
        request.state.user, request.state.csrf, request.state.token = None, "", None
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                token = app.state.signer.unsign(raw, max_age=users.SESSION_SECONDS).decode()
            except (BadSignature, SignatureExpired):
                token = None
            found = users.session_user(app.state.lab.store, token) if token else None
            if found is not None:
                request.state.user, request.state.csrf = found
                request.state.token = token
        if request.state.user is None and request.url.path not in PUBLIC:
            if request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", status_code=303)
            return Response("login required", status_code=401, media_type="text/plain")
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response


def current_user(request: Request) -> users.WebUser:
    user = request.state.user
    if user is None:  # the middleware lets only PUBLIC paths through without one
        raise HTTPException(401, "login required")
    return user


async def require_csrf(request: Request) -> None:
    """The session's CSRF token must come with the request (header, or a `csrf` form field)."""
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get("csrf")
    expected = request.state.csrf
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def require_role(role: str) -> Any:
    def check(user: users.WebUser = Depends(current_user)) -> users.WebUser:
        if not user.can(role):
            raise HTTPException(403, f"this needs the {role} role (you are {user.role})")
        return user

    return check


def create_app(db: str | None = None, *, secret: bytes | None = None, https: bool = False) -> FastAPI:
    """The web app on the store at `db` (resolved as `--db`). `secret` signs the session cookies; without one
    a random secret is made, so a restart logs everyone out. `https`: mark cookies Secure. The caller closes
    `app.state.lab` when done serving (a test client's start and stop must not close the store)."""
    import labctl
    from labctl.web import admin, benches, campaigns, pages

    app = FastAPI(title="labctl", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lab = labctl.connect(db)
    env_secret = os.environ.get("LABCTL_WEB_SECRET", "").encode()
    app.state.signer = TimestampSigner(secret or env_secret or secrets.token_bytes(32), salt="labctl-session")
    app.state.throttle = LoginThrottle()
    app.state.templates = templates()
    app.state.https = https
    app.state.figures = FigureCache()  # report figures drawn for the pages (removed at exit)
    app.add_middleware(AuthMiddleware)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if request.headers.get("hx-request"):  # HTMX swaps it into the page: escaped, as any text
            return HTMLResponse(f'<p class="error" role="alert">{html.escape(str(exc.detail))}</p>',
                                status_code=exc.status_code)
        if "text/html" in request.headers.get("accept", ""):
            return app.state.templates.TemplateResponse(
                request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                status_code=exc.status_code)
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")

    def login_page(request: Request, error: str, status: int = 200) -> Response:
        """The form with a fresh token in a hidden field and in a signed cookie; the POST must bring both, so
        a page elsewhere cannot log a browser in to an account of its choosing (login CSRF)."""
        token = secrets.token_urlsafe(32)
        response = app.state.templates.TemplateResponse(
            request, "login.html", {"error": error, "form": token}, status_code=status)
        response.set_cookie(LOGIN_COOKIE, app.state.signer.sign(token).decode(), max_age=LOGIN_FORM_SECONDS,
                            httponly=True, samesite="strict", secure=app.state.https, path="/login")
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return login_page(request, "")

    @app.post("/login")
    def login(request: Request, username: str = Form(...), password: str = Form(...),
              csrf: str = Form("")) -> Response:
        try:
            expected = app.state.signer.unsign(request.cookies.get(LOGIN_COOKIE, ""),
                                               max_age=LOGIN_FORM_SECONDS).decode()
        except (BadSignature, SignatureExpired):
            expected = ""
        if not expected or not hmac.compare_digest(csrf, expected):
            return login_page(request, "The login form expired: please log in again.", 403)
        address, throttle = client_address(request), app.state.throttle
        wait = throttle.blocked(username, address)
        if wait > 0:
            return login_page(request, f"Too many failed logins: try again in {int(wait) + 1} s.", 429)
        user = users.authenticate(app.state.lab.store, username, password)
        if user is None:
            throttle.failed(username, address)
            return login_page(request, "Wrong user name or password.", 401)
        throttle.succeeded(username)
        token, _ = users.open_session(app.state.lab.store, user, address)
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(COOKIE, app.state.signer.sign(token).decode(), max_age=users.SESSION_SECONDS,
                            httponly=True, samesite="lax", secure=app.state.https, path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout", dependencies=[Depends(require_csrf)])
    def logout(request: Request) -> Response:
        if request.state.token:
            users.close_session(app.state.lab.store, request.state.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/runs", status_code=303)

    pages.register(app)
    benches.register(app)
    campaigns.register(app)
    admin.register(app)
    return app
