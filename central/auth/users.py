"""Operator accounts: hashed passwords, roles and what each role may do, and log-in with lock-out.

A role is a fixed set of permissions; pages and API endpoints ask for a permission, never for a role, so the
table below is the one place that says who may do what.
"""

from __future__ import annotations

import getpass
import sys
from dataclasses import dataclass
from datetime import timedelta

import sqlite_utils
from werkzeug.security import check_password_hash, generate_password_hash

from kuzet.central.auth import audit, sessions
from kuzet.shared import timeutil

PERMISSIONS: dict[str, str] = {
    "events.view": "see the event queue and event details",
    "events.act": "acknowledge, assign and close events",
    "events.media": "view event snapshots and clips",
    "events.hold": "put an event's evidence on hold (exempt from retention)",
    "dispatch": "dispatch patrol units to events",
    "map.view": "see the map of cameras and units",
    "devices.view": "see device health",
    "devices.manage": "register and revoke devices",
    "dead_letters.view": "inspect messages that broke the contract",
    "stats.view": "see statistics and export them",
    "audit.read": "read the audit log",
    "users.read": "see the list of accounts",
    "users.manage": "create, disable and re-enable accounts",
}

_OPERATOR = {
    "events.view",
    "events.act",
    "events.media",
    "dispatch",
    "map.view",
    "devices.view",
    "stats.view",
}
ROLES: dict[str, frozenset[str]] = {
    "operator": frozenset(_OPERATOR),
    "supervisor": frozenset(_OPERATOR | {"events.hold", "audit.read", "users.read", "dead_letters.view"}),
    # Technicians keep the cameras running; they do not look at what the cameras saw.
    "technician": frozenset({"devices.view", "devices.manage", "map.view", "dead_letters.view"}),
    "admin": frozenset(PERMISSIONS),
}

MIN_PASSWORD_LENGTH = 10
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
# Checked when the user does not exist, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("kuzet-no-such-user", method="scrypt")


class AuthError(ValueError):
    """A log-in or account change was refused; the message is safe to show to the person."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    display_name: str
    session_version: int = 0  # a session made under another version has ended (password reset, disabled)

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES[self.role]

    def can(self, permission: str) -> bool:
        return permission in ROLES[self.role]

    def as_json(self) -> dict:
        return {
            "username": self.username,
            "role": self.role,
            "display_name": self.display_name,
            "permissions": sorted(self.permissions),
        }


def _user(row: dict) -> User:
    return User(
        row["username"], row["role"], row["display_name"] or row["username"], row.get("session_version") or 0
    )


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def create_user(
    db: sqlite_utils.Database,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    actor: str = "",
) -> tuple[User, bool]:
    """Create the account, or reset its password, role and name if it exists (unlocking it).
    Returns the user and whether it was new."""
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").isalnum():
        raise AuthError("a username is 1-64 letters, digits, dots and dashes")
    check_password_strength(password)
    record = {
        "username": username,
        "password_hash": generate_password_hash(password, method="scrypt"),
        "role": role,
        "display_name": display_name or username,
        "disabled": 0,
        "failed_logins": 0,
        "locked_until": None,
    }
    with audit.transaction(db):
        existing = get_row(db, username)
        if existing is None:
            _write(
                db,
                "INSERT INTO users ({columns}) VALUES ({marks})",
                {**record, "created_at": timeutil.now_wire()},
            )
        else:
            _write(db, "UPDATE users SET {assignments} WHERE username = :username", record)
            _end_sessions(db, username)
        audit.append(
            db,
            actor or "system",
            "user.create" if existing is None else "user.reset",
            f"user:{username}",
            {"role": role, "display_name": record["display_name"]},
        )
    return _user(get_row(db, username)), existing is None


def _end_sessions(db: sqlite_utils.Database, username: str) -> None:
    """Every page logged in as this account is logged out at its next request."""
    db.execute(
        "UPDATE users SET session_version = coalesce(session_version, 0) + 1 WHERE username = ?", [username]
    )
    sessions.end_all(db, username)


def _write(db: sqlite_utils.Database, template: str, record: dict) -> None:
    # Plain SQL: sqlite-utils' insert/update commit on their own, which would end our transaction early.
    sql = template.format(
        columns=", ".join(record),
        marks=", ".join(f":{name}" for name in record),
        assignments=", ".join(f"{name} = :{name}" for name in record),
    )
    db.execute(sql, record)


def get_row(db: sqlite_utils.Database, username: str) -> dict | None:
    rows = list(db.query("SELECT * FROM users WHERE username = ?", [username]))
    return rows[0] if rows else None


def get_user(db: sqlite_utils.Database, username: str) -> User | None:
    """The active (not disabled) account of that name, or None."""
    row = get_row(db, username)
    if row is None or row["disabled"]:
        return None
    return _user(row)


def list_users(db: sqlite_utils.Database) -> list[dict]:
    return list(
        db.query(
            "SELECT username, role, display_name, created_at, disabled, failed_logins, locked_until"
            " FROM users ORDER BY username"
        )
    )


def set_disabled(db: sqlite_utils.Database, username: str, disabled: bool, actor: str) -> None:
    with audit.transaction(db):
        if get_row(db, username) is None:
            raise AuthError(f"no account {username!r}")
        _write(
            db,
            "UPDATE users SET {assignments} WHERE username = :username",
            {"username": username, "disabled": int(disabled), "failed_logins": 0, "locked_until": None},
        )
        _end_sessions(db, username)
        audit.append(db, actor, "user.disable" if disabled else "user.enable", f"user:{username}", {})


def authenticate(db: sqlite_utils.Database, username: str, password: str, source: str = "") -> User:
    """Check a log-in. Every attempt is audited; after MAX_FAILED_LOGINS wrong passwords in a row the account
    is locked for LOCKOUT, even for the right password. Raises AuthError with a message for the person."""
    now = timeutil.utc_now()
    row = get_row(db, username)
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        audit.append(
            db, username or "?", "login.failed", f"user:{username}", {"source": source, "why": "unknown"}
        )
        raise AuthError("wrong username or password")
    if row["locked_until"] and timeutil.from_wire(row["locked_until"]) > now:
        audit.append(db, username, "login.failed", f"user:{username}", {"source": source, "why": "locked"})
        raise AuthError("too many failed log-ins: this account is locked for a while; ask a supervisor")
    if not check_password_hash(row["password_hash"], password):
        failed = (row["failed_logins"] or 0) + 1
        locked_until = timeutil.to_wire(now + LOCKOUT) if failed >= MAX_FAILED_LOGINS else None
        with audit.transaction(db):
            db.execute(
                "UPDATE users SET failed_logins = ?, locked_until = ? WHERE username = ?",
                [failed, locked_until, username],
            )
            audit.append(
                db,
                username,
                "login.failed",
                f"user:{username}",
                {"source": source, "why": "password", "failed": failed, "locked": bool(locked_until)},
            )
        raise AuthError("wrong username or password")
    if row["disabled"]:
        audit.append(db, username, "login.failed", f"user:{username}", {"source": source, "why": "disabled"})
        raise AuthError("this account is disabled")
    with audit.transaction(db):
        db.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE username = ?", [username])
        audit.append(db, username, "login", f"user:{username}", {"source": source})
    return _user(row)


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise AuthError("the two passwords differ")
    return first


def create_user_command(central, args) -> int:
    """``kuzet central create-user NAME --role ROLE [--display-name ..] [--password-stdin]``."""
    try:
        password = _read_password(args)
        user, created = create_user(
            central.db(),
            args.username,
            password,
            args.role,
            args.display_name,
            actor=f"cli:{getpass.getuser()}",
        )
    except AuthError as exc:
        print(f"create-user: {exc}", file=sys.stderr)
        return 2
    verb = "created" if created else "reset (password, role and name; unlocked)"
    print(f"account {user.username} {verb}: role {user.role}")
    return 0
