"""API tokens for tools (provisioning laptops, scripts): random, shown once, stored only as a SHA-256 hash.

A token acts as its account, with that account's role; disabling the account or revoking the token stops it.
"""

from __future__ import annotations

import getpass
import hashlib
import secrets
import sys
from datetime import timedelta

from flask_babel import gettext
from flask_babel import lazy_gettext as _

from kuzet.central.auth import audit, users
from kuzet.central.store import portable
from kuzet.shared import timeutil

PREFIX = "kzt_"
LAST_USED_EVERY = timedelta(minutes=1)  # how often a token's last use is written down


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db, username: str, name: str, actor: str) -> str:
    """Create a token for an active account; returns the token text (the only time it exists in clear)."""
    if users.get_user(db, username) is None:
        raise users.AuthError(_("no active account %(name)r", name=username))
    if not name.strip():
        raise users.AuthError(_("give the token a name that says what it is for"))
    token = PREFIX + secrets.token_urlsafe(32)
    digest = _digest(token)
    with audit.transaction(db):
        portable.execute(
            db,
            "INSERT INTO api_tokens (token_hash, username, name, created_at) VALUES (?, ?, ?, ?)",
            [digest, username, name, timeutil.now_wire()],
        )
        audit.append(db, actor, "token.create", f"user:{username}", {"name": name, "id": digest[:12]})
    return token


def authenticate(db, token: str) -> users.User | None:
    """The account a bearer token acts as, or None if the token is unknown, revoked or its account disabled."""
    if not token.startswith(PREFIX):
        return None
    digest = _digest(token)
    rows = portable.rows(
        db, "SELECT username, revoked, last_used_at FROM api_tokens WHERE token_hash = ?", [digest]
    )
    if not rows or rows[0]["revoked"]:
        return None
    user = users.get_user(db, rows[0]["username"])
    now = timeutil.utc_now()
    last = rows[0]["last_used_at"]
    # A use is recorded at most once a minute: a write on every request made 50 open pages' requests queue
    # for the database's one writer (and some answer 500 "database is locked"), for no news.
    if user is not None and (not last or now - timeutil.from_wire(last) >= LAST_USED_EVERY):
        with audit.transaction(db):
            portable.execute(
                db,
                "UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ?",
                [timeutil.to_wire(now), digest],
            )
    return user


def current_account(db, token: str) -> users.User | None:
    """Like ``authenticate`` without recording a use: for re-checking a request that stays open (a live
    stream) that its token has not been revoked nor its account disabled since it began."""
    if not token.startswith(PREFIX):
        return None
    rows = portable.rows(
        db, "SELECT username, revoked FROM api_tokens WHERE token_hash = ?", [_digest(token)]
    )
    if not rows or rows[0]["revoked"]:
        return None
    return users.get_user(db, rows[0]["username"])


def list_tokens(db) -> list[dict]:
    rows = portable.rows(
        db,
        "SELECT substr(token_hash, 1, 12) AS id, username, name, created_at, last_used_at, revoked"
        " FROM api_tokens ORDER BY created_at DESC",
    )
    return list(rows)


def revoke(db, token_id: str, actor: str) -> bool:
    """Revoke by the short id shown in lists (the first 12 hex digits of the hash)."""
    if len(token_id) < 12:
        return False
    with audit.transaction(db):
        cursor = portable.execute(
            db,
            "UPDATE api_tokens SET revoked = 1 WHERE substr(token_hash, 1, 12) = ? AND revoked = 0",
            [token_id],
        )
        if cursor.rowcount:
            audit.append(db, actor, "token.revoke", f"token:{token_id}", {})
    return bool(cursor.rowcount)


def create_token_command(central, args) -> int:
    """``kuzet central create-token USER --name WHAT``: prints the token once."""
    try:
        token = create_token(central.db(), args.username, args.name, actor=f"cli:{getpass.getuser()}")
    except users.AuthError as exc:
        print(f"create-token: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(
        gettext(
            "(API token for %(name)s, '%(what)s': store it now, it is not shown again)",
            name=args.username,
            what=args.name,
        ),
        file=sys.stderr,
    )
    return 0
