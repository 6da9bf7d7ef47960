"""`labctl serve`: the web app (labctl.web) under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

Db = Annotated[str | None, typer.Option("--db", envvar="LABCTL_DB", help="Database URL or SQLite file.")]


def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this PC only).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    https: Annotated[bool, typer.Option("--secure-cookies", help="Mark the session cookie Secure (behind an "
                                                                  "https proxy).")] = False,
    db: Db = None,
) -> None:
    """Serve the web app: runs, run pages with live plots, EIS, report figures, transcript, audit, control and
    exports; campaigns; benches and queue; users (needs a login; add the first admin with `labctl users
    add`). Set LABCTL_WEB_SECRET to keep sessions across restarts."""
    from labctl.errors import ConfigError

    try:
        import uvicorn

        from labctl.web.app import create_app
    except ImportError as exc:
        raise ConfigError(f"labctl serve needs the web extra: pip install 'labctl[web]' ({exc})") from exc
    app = create_app(db, https=https)
    from labctl.web.users import list_users

    if not list_users(app.state.lab.store):
        from labctl.cli import err_console

        err_console.print("no web users yet: add one with `labctl users add NAME --role admin`", markup=False)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
    finally:
        app.state.lab.close()


def register(app: typer.Typer) -> None:
    """Add `serve`."""
    app.command("serve")(serve_cmd)
