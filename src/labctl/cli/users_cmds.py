"""Web users: `labctl users add|passwd|disable|list` (the accounts `labctl serve` logs in)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any

import typer

users_app = typer.Typer(help="Web users of `labctl serve`: add, passwd, disable, list.", no_args_is_help=True)

Db = Annotated[str | None, typer.Option("--db", envvar="LABCTL_DB", help="Database URL or SQLite file.")]
Stdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input "
                                                               "(one line) instead of asking.")]


def _open(db: str | None) -> Any:
    from labctl.store import Store

    return Store.open(db)


def _password(stdin: bool) -> str:
    """The new password: one line of stdin, or asked twice without echo."""
    from labctl.errors import ConfigError

    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise ConfigError("the two passwords differ; nothing changed")
    return first


def add_cmd(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ - @).")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")] = "viewer",
    password_stdin: Stdin = False,
    db: Db = None,
) -> None:
    """Add a web user with a role (viewer: read; operator: also pause/resume/abort/ack; admin: all)."""
    from labctl.cli import console
    from labctl.web.users import add_user, check_name, check_role

    check_name(name), check_role(role)
    password = _password(password_stdin)
    store = _open(db)
    try:
        add_user(store, name, role, password, actor=getpass.getuser())
    finally:
        store.close()
    console.print(f"user {name} added ({role})", markup=False, highlight=False)


def passwd_cmd(name: Annotated[str, typer.Argument(help="User name.")], password_stdin: Stdin = False,
               db: Db = None) -> None:
    """Set a user's password (their sessions end)."""
    from labctl.cli import console
    from labctl.web.users import set_password

    password = _password(password_stdin)
    store = _open(db)
    try:
        set_password(store, name, password, actor=getpass.getuser())
    finally:
        store.close()
    console.print(f"password of {name} changed", markup=False, highlight=False)


def disable_cmd(name: Annotated[str, typer.Argument(help="User name.")], db: Db = None) -> None:
    """Disable a user: they cannot log in and their sessions end (runs and audit entries keep the name)."""
    from labctl.cli import console
    from labctl.web.users import disable_user

    store = _open(db)
    try:
        disable_user(store, name, actor=getpass.getuser())
    finally:
        store.close()
    console.print(f"user {name} disabled", markup=False, highlight=False)


def list_cmd(db: Db = None) -> None:
    """The web users, their roles and whether they are disabled."""
    from labctl.cli import console
    from labctl.web.users import list_users

    store = _open(db)
    try:
        rows = list_users(store)
    finally:
        store.close()
    for r in rows:
        console.print(f"{r['name']}\t{r['role']}" + ("\tdisabled" if r["disabled"] else ""),
                      markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `users add|passwd|disable|list`."""
    users_app.command("add")(add_cmd)
    users_app.command("passwd")(passwd_cmd)
    users_app.command("disable")(disable_cmd)
    users_app.command("list")(list_cmd)
    app.add_typer(users_app, name="users")
