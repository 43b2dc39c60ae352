"""Log-in sessions kept on central, so that logging out ends a session for good.

The session cookie is signed but held by the browser: clearing it at log-out does nothing to a copy (a proxy
log, a shared computer, a stolen cookie), which would otherwise stay good for the whole cookie lifetime. So
each log-in gets a random session id whose SHA-256 is kept here; the cookie carries the id, and a request
counts as logged in only while its row exists. Logging out deletes the row; a password reset or disabling
the account deletes all of that account's rows (``users._end_sessions``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlite_utils

from kuzet.central.auth import audit
from kuzet.shared import timeutil

LIFETIME = timedelta(hours=13)  # a twelve-hour shift and a handover, as the cookie's own lifetime

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS web_sessions ("
    " sid_hash TEXT PRIMARY KEY, username TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL)"
)
_INDEX = "CREATE INDEX IF NOT EXISTS idx_web_sessions_username ON web_sessions (username)"


def _ensure(db: sqlite_utils.Database) -> None:
    db.execute(_SCHEMA)
    db.execute(_INDEX)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def start(db: sqlite_utils.Database, username: str) -> str:
    """A new session for this account; returns its id (for the cookie; only its hash is stored)."""
    _ensure(db)
    sid = secrets.token_urlsafe(32)
    now = timeutil.utc_now()
    with audit.transaction(db):
        db.execute(
            "INSERT INTO web_sessions (sid_hash, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
            [_digest(sid), username, timeutil.to_wire(now), timeutil.to_wire(now + LIFETIME)],
        )
        # Forget sessions that ran out, so the table does not grow.
        db.execute("DELETE FROM web_sessions WHERE expires_at < ?", [timeutil.to_wire(now)])
    return sid


def valid(db: sqlite_utils.Database, sid: str | None, username: str) -> bool:
    """Whether this session id is a live session of this account."""
    if not sid or not isinstance(sid, str):
        return False
    _ensure(db)
    row = db.execute(
        "SELECT username, expires_at FROM web_sessions WHERE sid_hash = ?", [_digest(sid)]
    ).fetchone()
    if row is None or row[0] != username:
        return False
    return timeutil.from_wire(row[1]) > timeutil.utc_now()


def end(db: sqlite_utils.Database, sid: str | None) -> None:
    """Log this one session out (the account's other sessions, on other computers, go on)."""
    if not sid or not isinstance(sid, str):
        return
    _ensure(db)
    with audit.transaction(db):
        db.execute("DELETE FROM web_sessions WHERE sid_hash = ?", [_digest(sid)])


def end_all(db: sqlite_utils.Database, username: str) -> None:
    """Log out every session of this account (its password was reset, or it was disabled)."""
    _ensure(db)
    with audit.transaction(db):
        db.execute("DELETE FROM web_sessions WHERE username = ?", [username])
