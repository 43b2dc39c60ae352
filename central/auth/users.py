"""Operator accounts: hashed passwords, roles and what each role may do, and log-in with lock-out.

A role is a fixed set of permissions; pages and API endpoints ask for a permission, never for a role, so the
table below is the one place that says who may do what.
"""

from __future__ import annotations

import getpass
import sys
from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext
from flask_babel import lazy_gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from kuzet.central.auth import audit, sessions
from kuzet.central.store import portable
from kuzet.shared import timeutil

# The descriptions are lazy translations: str() gives them in the reader's language.
PERMISSIONS: dict[str, object] = {
    "events.view": _("see the event queue and event details"),
    "events.act": _("acknowledge, assign and close events"),
    "events.media": _("view event snapshots and clips"),
    "events.hold": _("put an event's evidence on hold (exempt from retention)"),
    "evidence.export": _("export an incident's evidence package (clip, snapshot, facts, history)"),
    "dispatch": _("dispatch patrol units to events"),
    "map.view": _("see the map of cameras and units"),
    "devices.view": _("see device health"),
    "devices.manage": _("register and revoke devices"),
    "dead_letters.view": _("inspect messages that broke the contract"),
    "stats.view": _("see statistics and export them"),
    "audit.read": _("read the audit log"),
    "users.read": _("see the list of accounts"),
    "users.manage": _("create, disable and re-enable accounts"),
    "users.unlock": _("lift an account's log-in lock-out (after failed log-ins)"),
    "watchlist.manage": _("enrol, edit, remove and view watchlist entries (missing and wanted persons)"),
    "watchlist.review": _("see possible watchlist matches side by side and confirm or reject them"),
}

_OPERATOR = {
    "events.view",
    "events.act",
    "events.media",
    "evidence.export",  # officers draw up protocols and must be able to show the video
    "dispatch",
    "map.view",
    "devices.view",
    "stats.view",
}
ROLES: dict[str, frozenset[str]] = {
    "operator": frozenset(_OPERATOR),
    "supervisor": frozenset(
        _OPERATOR
        | {
            "events.hold",
            "audit.read",
            "users.read",
            "users.unlock",
            "dead_letters.view",
            "watchlist.manage",
            "watchlist.review",
        }
    ),
    # Technicians keep the cameras running; they do not look at what the cameras saw.
    "technician": frozenset({"devices.view", "devices.manage", "map.view", "dead_letters.view"}),
    "admin": frozenset(PERMISSIONS),
}

MIN_PASSWORD_LENGTH = 10
MAX_FAILED_LOGINS = 5  # wrong passwords from one address before that address is locked out of the account
LOCKOUT = timedelta(minutes=15)
ACCOUNT_FAILURES_GUARD = 20  # failures on one account from all addresses before every failing address waits
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
        raise AuthError(_("the password must have at least %(n)s characters", n=MIN_PASSWORD_LENGTH))


def create_user(
    db,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    actor: str = "",
) -> tuple[User, bool]:
    """Create the account, or reset its password, role and name if it exists (unlocking it).
    Returns the user and whether it was new."""
    if role not in ROLES:
        raise AuthError(_("unknown role %(role)r; one of %(roles)s", role=role, roles=", ".join(ROLES)))
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").isalnum():
        raise AuthError(_("a username is 1-64 letters, digits, dots and dashes"))
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
            _clear_failures(db, username)
            _end_sessions(db, username)
        audit.append(
            db,
            actor or "system",
            "user.create" if existing is None else "user.reset",
            f"user:{username}",
            {"role": role, "display_name": record["display_name"]},
        )
    return _user(get_row(db, username)), existing is None


def _end_sessions(db, username: str) -> None:
    """Every page logged in as this account is logged out at its next request."""
    portable.execute(
        db,
        "UPDATE users SET session_version = coalesce(session_version, 0) + 1 WHERE username = ?",
        [username],
    )
    sessions.end_all(db, username)


def _write(db, template: str, record: dict) -> None:
    # Plain SQL: sqlite-utils' insert/update commit on their own, which would end our transaction early.
    sql = template.format(
        columns=", ".join(record),
        marks=", ".join(f":{name}" for name in record),
        assignments=", ".join(f"{name} = :{name}" for name in record),
    )
    portable.execute(db, sql, record)


def get_row(db, username: str) -> dict | None:
    rows = portable.rows(db, "SELECT * FROM users WHERE username = ?", [username])
    return rows[0] if rows else None


def get_user(db, username: str) -> User | None:
    """The active (not disabled) account of that name, or None."""
    row = get_row(db, username)
    if row is None or row["disabled"]:
        return None
    return _user(row)


def list_users(db) -> list[dict]:
    return list(
        portable.rows(
            db,
            "SELECT username, role, display_name, created_at, disabled, failed_logins, locked_until"
            " FROM users ORDER BY username",
        )
    )


def set_disabled(db, username: str, disabled: bool, actor: str) -> None:
    with audit.transaction(db):
        if get_row(db, username) is None:
            raise AuthError(_("no account %(name)r", name=username))
        _write(
            db,
            "UPDATE users SET {assignments} WHERE username = :username",
            {"username": username, "disabled": int(disabled), "failed_logins": 0, "locked_until": None},
        )
        _end_sessions(db, username)
        audit.append(db, actor, "user.disable" if disabled else "user.enable", f"user:{username}", {})


# Failed log-ins (``login_failures``, one row each) are kept in the database for the lock-out below, not in the
# web process's memory, so that ``kuzet central unlock-user`` and the supervisors' Unlock button clear the
# same state.
def _recent_failures(db, username: str, since: str) -> dict[str, int]:
    """Failures per source address for this account since ``since``."""
    rows = portable.execute(
        db,
        "SELECT source, count(*) FROM login_failures WHERE username = ? AND at > ? GROUP BY source",
        [username, since],
    )
    return {source: count for source, count in rows}


def _clear_failures(db, username: str) -> int:
    return portable.execute(db, "DELETE FROM login_failures WHERE username = ?", [username]).rowcount


def _locked_out(failures: dict[str, int], source: str) -> bool:
    """Whether this source may not try this account now. A lock-out holds the failing source only: an
    attacker's guesses never lock the operator out of the desk they are sitting at."""
    if failures.get(source, 0) >= MAX_FAILED_LOGINS:
        return True
    # Guessing spread over many addresses: every address that has failed on this account waits; an address
    # that has not failed (the operator's own desk) still gets its try.
    return sum(failures.values()) >= ACCOUNT_FAILURES_GUARD and failures.get(source, 0) > 0


def authenticate(db, username: str, password: str, source: str = "") -> User:
    """Check a log-in. Every attempt is audited. After MAX_FAILED_LOGINS wrong passwords from one source
    address within LOCKOUT, that address is locked out of that account for the rest of LOCKOUT (even with the
    right password); other addresses are not, so a guesser cannot lock a shift out of its accounts. Once an
    account has ACCOUNT_FAILURES_GUARD failures within LOCKOUT, every address with a failure on it is held too.
    A supervisor's ``unlock`` clears it all. Raises AuthError with a message for the person."""
    now = timeutil.utc_now()
    row = get_row(db, username)
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        audit.append(
            db, username or "?", "login.failed", f"user:{username}", {"source": source, "why": "unknown"}
        )
        raise AuthError(_("wrong username or password"))
    failures = _recent_failures(db, username, timeutil.to_wire(now - LOCKOUT))
    if _locked_out(failures, source):
        audit.append(db, username, "login.failed", f"user:{username}", {"source": source, "why": "locked"})
        raise AuthError(
            _(
                "too many failed log-ins from this computer: this account is locked here for a while;"
                " ask a supervisor to unlock it"
            )
        )
    if not check_password_hash(row["password_hash"], password):
        failed = (row["failed_logins"] or 0) + 1
        from_source = failures.get(source, 0) + 1
        failures[source] = from_source
        locked = _locked_out(failures, source)
        with audit.transaction(db):
            portable.execute(
                db, "DELETE FROM login_failures WHERE at <= ?", [timeutil.to_wire(now - LOCKOUT)]
            )
            portable.execute(
                db,
                "INSERT INTO login_failures (username, source, at) VALUES (?, ?, ?)",
                [username, source, timeutil.to_wire(now)],
            )
            # locked_until now says "some address is locked out of this account until": for the accounts page.
            portable.execute(
                db,
                "UPDATE users SET failed_logins = ?, locked_until = coalesce(?, locked_until) WHERE username = ?",
                [failed, timeutil.to_wire(now + LOCKOUT) if locked else None, username],
            )
            audit.append(
                db,
                username,
                "login.failed",
                f"user:{username}",
                {"source": source, "why": "password", "failed": from_source, "locked": locked},
            )
        raise AuthError(_("wrong username or password"))
    if row["disabled"]:
        audit.append(db, username, "login.failed", f"user:{username}", {"source": source, "why": "disabled"})
        raise AuthError(_("this account is disabled"))
    with audit.transaction(db):
        # This address's failures are forgiven; other addresses' (a guesser's) still count against them.
        portable.execute(
            db, "DELETE FROM login_failures WHERE username = ? AND source = ?", [username, source]
        )
        if not any(count for other, count in failures.items() if other != source):
            portable.execute(
                db, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE username = ?", [username]
            )
        audit.append(db, username, "login", f"user:{username}", {"source": source})
    return _user(row)


def unlock(db, username: str, actor: str) -> int:
    """Lift every lock-out on the account (all addresses); audited. Returns how many failures were cleared."""
    with audit.transaction(db):
        if get_row(db, username) is None:
            raise AuthError(_("no account %(name)r", name=username))
        cleared = _clear_failures(db, username)
        portable.execute(
            db, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE username = ?", [username]
        )
        audit.append(db, actor, "user.unlock", f"user:{username}", {"failures_cleared": cleared})
    return cleared


def last_unlock(db, username: str) -> int:
    """The audit sequence number of the account's latest unlock (0 if never): lets the web process notice an
    unlock made by the command line and drop what it counted in memory."""
    row = portable.execute(
        db, "SELECT max(seq) FROM audit WHERE target = ? AND action = 'user.unlock'", [f"user:{username}"]
    ).fetchone()
    return row[0] or 0


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise AuthError(_("the two passwords differ"))
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
    if created:
        print(gettext("account %(name)s created: role %(role)s", name=user.username, role=user.role))
    else:
        print(
            gettext(
                "account %(name)s reset (password, role and name; unlocked): role %(role)s",
                name=user.username,
                role=user.role,
            )
        )
    return 0


def unlock_user_command(central, args) -> int:
    """``kuzet central unlock-user NAME``: lift the account's log-in lock-outs (audited)."""
    try:
        cleared = unlock(central.db(), args.username, actor=f"cli:{getpass.getuser()}")
    except AuthError as exc:
        print(f"unlock-user: {exc}", file=sys.stderr)
        return 2
    print(
        gettext(
            "account %(name)s unlocked (%(count)s recent failed log-ins cleared)",
            name=args.username,
            count=cleared,
        )
    )
    return 0
