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

from kuzet.central.auth import audit
from kuzet.central.store import portable
from kuzet.shared import timeutil

LIFETIME = timedelta(hours=13)  # a twelve-hour shift and a handover, as the cookie's own lifetime


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def start(db, username: str) -> str:
    """A new session for this account; returns its id (for the cookie; only its hash is stored)."""
    sid = secrets.token_urlsafe(32)
    now = timeutil.utc_now()
    with audit.transaction(db):
        portable.execute(
            db,
            "INSERT INTO web_sessions (sid_hash, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
            [_digest(sid), username, timeutil.to_wire(now), timeutil.to_wire(now + LIFETIME)],
        )
        # Forget sessions that ran out, so the table does not grow.
        portable.execute(db, "DELETE FROM web_sessions WHERE expires_at < ?", [timeutil.to_wire(now)])
    return sid


def valid(db, sid: str | None, username: str) -> bool:
    """Whether this session id is a live session of this account."""
    if not sid or not isinstance(sid, str):
        return False
    row = portable.execute(
        db, "SELECT username, expires_at FROM web_sessions WHERE sid_hash = ?", [_digest(sid)]
    ).fetchone()
    if row is None or row[0] != username:
        return False
    return timeutil.from_wire(row[1]) > timeutil.utc_now()


def end(db, sid: str | None) -> None:
    """Log this one session out (the account's other sessions, on other computers, go on)."""
    if not sid or not isinstance(sid, str):
        return
    with audit.transaction(db):
        portable.execute(db, "DELETE FROM web_sessions WHERE sid_hash = ?", [_digest(sid)])


def end_all(db, username: str) -> None:
    """Log out every session of this account (its password was reset, or it was disabled)."""
    with audit.transaction(db):
        portable.execute(db, "DELETE FROM web_sessions WHERE username = ?", [username])
