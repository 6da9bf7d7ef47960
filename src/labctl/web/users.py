"""Web users and sessions in the store: argon2 password hashes, roles, server-side sessions.

A session cookie carries a random 256-bit token signed with the server's secret; the store keeps only the
token's SHA-256, so a stolen database copy logs nobody in, and logout or `labctl users disable` ends a
session at once (each request reads the user's row again: a role change applies to the next click).
User changes are audited in the hash chain (`user.added`, `user.password`, `user.disabled`) without hashes.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, update

from labctl.store.db import reading
from labctl.store.errors import StoreError
from labctl.store.models import USER_ROLES, User, WebSession

if TYPE_CHECKING:
    from labctl.store import Store

SESSION_SECONDS = 12 * 3600
MIN_PASSWORD = 10
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's current (RFC 9106 low-memory) parameters


@dataclass(frozen=True)
class WebUser:
    name: str
    role: str

    def can(self, role: str) -> bool:
        """Whether this user has `role` or a higher one (viewer < operator < admin)."""
        return USER_ROLES.index(self.role) >= USER_ROLES.index(role)


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
        raise StoreError(f"user name {name!r}: 1-64 characters of letters, digits and . _ - @")
    return name


def check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise StoreError(f"role {role!r}: one of {', '.join(USER_ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"the password needs at least {MIN_PASSWORD} characters")
    return password


def add_user(store: Store, name: str, role: str, password: str, *, actor: str) -> None:
    """Create user `name` with `role`; refuses an existing name."""
    check_name(name), check_role(role), check_password(password)
    digest, now = _hasher().hash(password), time.time()
    with store.engine.begin() as conn:
        if conn.execute(select(User.name).where(User.name == name)).first() is not None:
            raise StoreError(f"user {name!r} exists (use `labctl users passwd` to change the password)")
        conn.execute(insert(User).values(name=name, role=role, password_hash=digest, disabled=False,
                                          created_at=now, updated_at=now))
    store.append_event(None, "user.added", {"user": name, "role": role}, actor=actor)


def set_password(store: Store, name: str, password: str, *, actor: str) -> None:
    """Change `name`'s password and end their sessions."""
    check_password(password)
    _update(store, name, password_hash=_hasher().hash(password))
    store.append_event(None, "user.password", {"user": name}, actor=actor)


def disable_user(store: Store, name: str, *, actor: str) -> None:
    """Disable `name` (the row stays: runs and audit entries name them) and end their sessions."""
    _update(store, name, disabled=True)
    store.append_event(None, "user.disabled", {"user": name}, actor=actor)


def _update(store: Store, name: str, **values: object) -> None:
    with store.engine.begin() as conn:
        n = conn.execute(update(User).where(User.name == name).values(updated_at=time.time(), **values))
        if n.rowcount == 0:
            raise StoreError(f"no user {name!r}")
        conn.execute(delete(WebSession).where(WebSession.user_name == name))


def list_users(store: Store) -> list[dict[str, object]]:
    with reading(store.engine) as conn:
        rows = conn.execute(select(User.name, User.role, User.disabled).order_by(User.name)).all()
    return [dict(r._mapping) for r in rows]


# An argon2 hash of a random password: checked when the name is unknown, so a wrong name costs as long as a
# wrong password and the timing does not tell which names exist.
_DUMMY: list[str] = []


def authenticate(store: Store, name: str, password: str) -> WebUser | None:
    """The user if `password` is theirs and they are enabled, else None (same cost either way)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    ph = _hasher()
    with reading(store.engine) as conn:
        row = conn.execute(
            select(User.role, User.password_hash, User.disabled).where(User.name == name)).first()
    if not _DUMMY:
        _DUMMY.append(ph.hash(secrets.token_hex(16)))
    try:
        ph.verify(row.password_hash if row is not None else _DUMMY[0], password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if ph.check_needs_rehash(row.password_hash):
        _update_hash_only(store, name, ph.hash(password))
    return WebUser(name, row.role)


def _update_hash_only(store: Store, name: str, digest: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(User).where(User.name == name).values(password_hash=digest))


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: Store, user: WebUser, address: str) -> tuple[str, str]:
    """A new session for `user`: (cookie token, CSRF token). Expired sessions are swept here."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
    with store.engine.begin() as conn:
        conn.execute(delete(WebSession).where(WebSession.expires_at < now))
        conn.execute(insert(WebSession).values(token_sha256=_sha(token), user_name=user.name, csrf=csrf,
                                               created_at=now, expires_at=now + SESSION_SECONDS,
                                               address=address[:100]))
    return token, csrf


def session_user(store: Store, token: str) -> tuple[WebUser, str] | None:
    """(user, CSRF token) of a live session whose user is enabled, else None."""
    with reading(store.engine) as conn:
        row = conn.execute(
            select(User.name, User.role, User.disabled, WebSession.csrf, WebSession.expires_at)
            .join(User, User.name == WebSession.user_name)
            .where(WebSession.token_sha256 == _sha(token))
        ).first()
    if row is None or row.disabled or row.expires_at < time.time():
        return None
    return WebUser(row.name, row.role), row.csrf


def close_session(store: Store, token: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(WebSession).where(WebSession.token_sha256 == _sha(token)))
