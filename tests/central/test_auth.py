"""Accounts, roles, lock-out and API tokens, and the create-user / create-token commands."""

from __future__ import annotations

import argparse
import io
import os

import pytest

from kuzet.central.auth import audit, tokens, users

PASSWORD = "correct horse battery"


def test_password_is_hashed_and_login_works(central):
    db = central.db()
    user, created = users.create_user(db, "anna", PASSWORD, "operator", "Anna K.")
    assert created and user.role == "operator"
    stored = next(db.query("SELECT password_hash FROM users"))["password_hash"]
    assert PASSWORD not in stored and stored.startswith("scrypt:")
    assert users.authenticate(db, "anna", PASSWORD).display_name == "Anna K."
    with pytest.raises(users.AuthError, match="wrong username or password"):
        users.authenticate(db, "anna", "wrong password!")
    with pytest.raises(users.AuthError, match="wrong username or password"):
        users.authenticate(db, "nobody", PASSWORD)
    actions = [e["action"] for e in audit.entries(db)]
    assert actions == ["login.failed", "login.failed", "login", "user.create"]


def test_weak_password_and_bad_role_refused(central):
    with pytest.raises(users.AuthError, match="at least"):
        users.create_user(central.db(), "anna", "short", "operator")
    with pytest.raises(users.AuthError, match="unknown role"):
        users.create_user(central.db(), "anna", PASSWORD, "janitor")


def test_lockout_after_repeated_failures_even_for_the_right_password(central):
    db = central.db()
    users.create_user(db, "anna", PASSWORD, "operator")
    for _ in range(users.MAX_FAILED_LOGINS):
        with pytest.raises(users.AuthError):
            users.authenticate(db, "anna", "guess guess guess")
    with pytest.raises(users.AuthError, match="locked"):
        users.authenticate(db, "anna", PASSWORD)
    users.create_user(db, "anna", PASSWORD, "operator")  # an admin's reset unlocks
    assert users.authenticate(db, "anna", PASSWORD).username == "anna"


def test_disabled_account_cannot_log_in(central):
    db = central.db()
    users.create_user(db, "anna", PASSWORD, "operator")
    users.set_disabled(db, "anna", True, actor="admin")
    with pytest.raises(users.AuthError, match="disabled"):
        users.authenticate(db, "anna", PASSWORD)
    assert users.get_user(db, "anna") is None


def test_role_permissions():
    operator, technician = users.ROLES["operator"], users.ROLES["technician"]
    assert {"events.act", "events.media", "dispatch"} <= operator
    assert "audit.read" not in operator and "users.manage" not in operator
    assert "audit.read" in users.ROLES["supervisor"] and "users.manage" not in users.ROLES["supervisor"]
    assert "events.media" not in technician and "devices.manage" in technician
    assert users.ROLES["admin"] == frozenset(users.PERMISSIONS)


def test_tokens_are_stored_hashed_and_revocable(central):
    db = central.db()
    users.create_user(db, "tech", PASSWORD, "technician")
    token = tokens.create_token(db, "tech", "provisioning laptop 3", actor="admin")
    assert token not in str(list(db.query("SELECT * FROM api_tokens")))
    assert tokens.authenticate(db, token).username == "tech"
    assert tokens.authenticate(db, token + "x") is None
    assert tokens.authenticate(db, "Bearer nonsense") is None
    token_id = tokens.list_tokens(db)[0]["id"]
    assert tokens.revoke(db, token_id, actor="admin")
    assert tokens.authenticate(db, token) is None


def test_token_stops_with_its_disabled_account(central):
    db = central.db()
    users.create_user(db, "tech", PASSWORD, "technician")
    token = tokens.create_token(db, "tech", "script", actor="admin")
    users.set_disabled(db, "tech", True, actor="admin")
    assert tokens.authenticate(db, token) is None


def test_create_user_and_token_commands(central, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    args = argparse.Namespace(username="sup", role="supervisor", display_name="Dana", password_stdin=True)
    assert users.create_user_command(central, args) == 0
    assert "account sup created" in capsys.readouterr().out
    assert users.authenticate(central.db(), "sup", PASSWORD).role == "supervisor"

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert users.create_user_command(central, args) == 2
    assert "at least" in capsys.readouterr().err

    assert tokens.create_token_command(central, argparse.Namespace(username="sup", name="export")) == 0
    token = capsys.readouterr().out.strip()
    assert tokens.authenticate(central.db(), token).username == "sup"
    assert tokens.create_token_command(central, argparse.Namespace(username="ghost", name="x")) == 2
    assert audit.verify(central.db()) == (True, None)


def test_the_commands_through_the_kuzet_cli(tmp_path):
    """`kuzet central create-user / create-token / verify-audit` as an administrator runs them."""
    import sqlite3
    import subprocess
    import sys

    def kuzet(*args, stdin=""):
        return subprocess.run(
            [sys.executable, "-m", "kuzet.shared.cli", "central", "--data-dir", str(tmp_path), *args],
            input=stdin,
            env={
                **os.environ,
                "LANG": "en_US.UTF-8",
            },  # an English-speaking administrator (the site speaks Russian)
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = kuzet("create-user", "dana", "--role", "supervisor", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    token = kuzet("create-token", "dana", "--name", "nightly export")
    assert token.returncode == 0 and token.stdout.strip().startswith(tokens.PREFIX)
    verdict = kuzet("verify-audit")
    assert verdict.returncode == 0 and "2 entries" in verdict.stdout
    with sqlite3.connect(tmp_path / "kuzet.db") as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
    verdict = kuzet("verify-audit")
    assert verdict.returncode == 1 and "breaks at entry 1" in verdict.stderr
