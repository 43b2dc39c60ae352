"""Accounts, log-in sessions, API tokens and dead letters on both stores (SQLite, PostgreSQL), through each
store's ``connection()``: the same calls central's pages and commands make, with the same outcome, audited."""

from __future__ import annotations

import pytest

from kuzet.central.auth import audit, sessions, tokens, users
from kuzet.central.store import dead_letters, portable

PASSWORD = "correct horse battery"


def _actions(db) -> list[str]:
    return [row["action"] for row in portable.rows(db, "SELECT action FROM audit ORDER BY seq")]


def test_an_account_logs_in_and_a_wrong_password_is_counted_and_audited(db):
    user, created = users.create_user(db, "anna", PASSWORD, "operator", "Анна", actor="cli:root")
    assert created and user.display_name == "Анна"
    assert users.authenticate(db, "anna", PASSWORD, source="10.0.0.5").username == "anna"
    with pytest.raises(users.AuthError, match="wrong username or password"):
        users.authenticate(db, "anna", "not the password", source="10.0.0.9")
    # The refusal raised, and its failure row was kept all the same (its own transaction).
    assert users.get_row(db, "anna")["failed_logins"] == 1
    assert _actions(db) == ["user.create", "login", "login.failed"]
    assert audit.verify(db) == (True, None)


def test_repeated_failures_lock_out_that_source_until_unlocked(db):
    users.create_user(db, "anna", PASSWORD, "operator")
    for _ in range(users.MAX_FAILED_LOGINS):
        with pytest.raises(users.AuthError):
            users.authenticate(db, "anna", "wrong", source="10.0.0.9")
    with pytest.raises(users.AuthError, match="locked"):
        users.authenticate(db, "anna", PASSWORD, source="10.0.0.9")
    assert users.authenticate(db, "anna", PASSWORD, source="10.0.0.5").username == "anna"  # another desk
    assert users.unlock(db, "anna", actor="boss") == users.MAX_FAILED_LOGINS
    assert users.authenticate(db, "anna", PASSWORD, source="10.0.0.9").username == "anna"
    assert users.last_unlock(db, "anna") > 0


def test_a_session_ends_at_logout_and_every_session_at_a_password_reset(db):
    users.create_user(db, "anna", PASSWORD, "operator")
    first, second = sessions.start(db, "anna"), sessions.start(db, "anna")
    assert sessions.valid(db, first, "anna") and not sessions.valid(db, first, "boris")
    sessions.end(db, first)
    assert not sessions.valid(db, first, "anna") and sessions.valid(db, second, "anna")
    users.create_user(db, "anna", "another long password", "operator")  # a reset
    assert not sessions.valid(db, second, "anna")


def test_a_token_acts_as_its_account_until_revoked(db):
    users.create_user(db, "laptop", PASSWORD, "supervisor")
    token = tokens.create_token(db, "laptop", "provisioning laptop", actor="cli:root")
    assert tokens.authenticate(db, token).username == "laptop"
    listed = tokens.list_tokens(db)
    assert [t["name"] for t in listed] == ["provisioning laptop"] and listed[0]["last_used_at"]
    assert tokens.revoke(db, listed[0]["id"], actor="boss")
    assert tokens.authenticate(db, token) is None and tokens.current_account(db, token) is None
    assert _actions(db)[-2:] == ["token.create", "token.revoke"]


def test_a_tokens_use_is_written_down_at_most_once_a_minute(db):
    """Every request with a token used to write: 50 open pages queued on the database's one writer."""
    from kuzet.central.store import portable

    users.create_user(db, "page", PASSWORD, "operator")
    token = tokens.create_token(db, "page", "a wall screen", actor="cli:root")

    def last_used() -> str | None:
        return portable.rows(db, "SELECT last_used_at FROM api_tokens")[0]["last_used_at"]

    tokens.authenticate(db, token)
    first = last_used()
    assert first
    for _ in range(5):
        assert tokens.authenticate(db, token).username == "page"
    assert last_used() == first  # within the minute: read, not written
    with portable.transaction(db):
        portable.execute(db, "UPDATE api_tokens SET last_used_at = ?", ["2026-01-01T00:00:00.000Z"])
    tokens.authenticate(db, token)
    assert last_used() > "2026-01-01T00:00:00.000Z"  # a minute later: written again


def test_a_dead_letter_keeps_its_first_bytes_and_whole_size(db):
    first = dead_letters.add(db, "kuzet/x/y", b"\x00\xffbroken", "not JSON", "2026-11-21T10:00:00.000Z", 4)
    second = dead_letters.add(db, "kuzet/x/y", b"again", "not JSON", "2026-11-21T10:00:01.000Z", 64)
    kept = portable.rows(db, "SELECT id, payload, payload_size FROM dead_letters ORDER BY id")
    assert [(r["id"], bytes(r["payload"]), r["payload_size"]) for r in kept] == [
        (first, b"\x00\xffbr", 8),
        (second, b"again", 5),
    ]
