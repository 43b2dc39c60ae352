"""Log-in limits that stop guessing but not a shift change behind one NAT address, and sessions that end when
their account's password is reset or the account is disabled."""

from __future__ import annotations

import pytest
from support.web import PASSWORD, csrf_token, login

from kuzet.central.auth import users
from kuzet.central.auth.ratelimit import FAILURES_PER_ACCOUNT, LoginLimiter
from kuzet.central.web import create_app

NAT = "10.20.0.1"


@pytest.fixture
def central_options():
    return {"accounts": True}  # one account per role (support.web)


@pytest.fixture
def app(central):
    return create_app(central)


def _client(app, address: str = NAT):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_a_whole_shift_logs_in_through_one_address(app, central):
    for number in range(12):  # more successful log-ins than the old limit of 10 per address allowed
        users.create_user(central.db(), f"operator-{number}", PASSWORD, "operator", actor="test")
    for number in range(12):
        response = login(_client(app), f"operator-{number}")
        assert response.status_code == 302, number


def test_failures_are_limited_per_account_and_address(app):
    for _ in range(FAILURES_PER_ACCOUNT):
        assert login(_client(app), "operator", "wrong password!").status_code == 401
    refused = login(_client(app), "operator", "wrong password!")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # The same account from another address, and another account from the same address, are not held up.
    assert login(_client(app, "10.20.0.2"), "supervisor").status_code == 302
    assert login(_client(app), "supervisor").status_code == 302
    # The throttled pair is refused even with the right password until the window passes.
    assert login(_client(app), "operator").status_code == 429


def test_one_address_cannot_guess_across_many_accounts():
    now = [0.0]
    limiter = LoginLimiter(per_account=3, per_address=5, window_s=60, clock=lambda: now[0])
    for name in ("a", "b", "c", "d", "e"):
        assert limiter.retry_after(NAT, name) == 0
        limiter.failed(NAT, name)
    assert limiter.retry_after(NAT, "f") > 0  # a fresh username does not help
    assert limiter.retry_after("10.20.0.9", "f") == 0
    now[0] = 61.0
    assert limiter.retry_after(NAT, "f") == 0  # the window slid past the failures


def test_a_success_forgets_that_accounts_failures_only():
    limiter = LoginLimiter(per_account=2, per_address=3, window_s=60, clock=lambda: 0.0)
    limiter.failed(NAT, "Operator")
    limiter.failed(NAT, "operator")  # usernames are counted case-insensitively
    assert limiter.retry_after(NAT, "operator") > 0
    limiter.succeeded(NAT, "operator")
    assert limiter.retry_after(NAT, "operator") == 0
    limiter.failed(NAT, "other")
    assert limiter.retry_after(NAT, "operator") > 0  # the address's three failures still count


@pytest.mark.parametrize("change", ["password reset", "disabled"])
def test_resetting_a_password_or_disabling_ends_the_accounts_sessions(app, central, change):
    page, other = _client(app), _client(app)
    assert login(page, "operator").status_code == 302
    assert login(other, "supervisor").status_code == 302
    assert page.get("/api/v1/me").status_code == 200

    if change == "password reset":
        users.create_user(central.db(), "operator", "a new password 42", "operator", actor="admin")
    else:
        users.set_disabled(central.db(), "operator", True, actor="admin")

    assert page.get("/api/v1/me").status_code == 401  # that session has ended
    assert other.get("/api/v1/me").status_code == 200  # other accounts' sessions are untouched
    if change == "disabled":
        users.set_disabled(central.db(), "operator", False, actor="admin")
        assert page.get("/api/v1/me").status_code == 401  # re-enabling does not bring it back
    fresh = _client(app)
    password = "a new password 42" if change == "password reset" else PASSWORD
    assert login(fresh, "operator", password).status_code == 302
    assert fresh.get("/api/v1/me").get_json()["username"] == "operator"


def test_the_admin_page_resetting_a_password_ends_its_sessions(app, central):
    page = _client(app)
    assert login(page, "operator").status_code == 302
    admin = _client(app, "10.20.0.7")
    login(admin, "admin")
    form = {
        "csrf_token": csrf_token(admin.get("/admin/users").get_data(as_text=True)),
        "username": "operator",
        "password": "reset by the admin 1",
        "role": "operator",
    }
    admin.post("/admin/users", data=form)
    assert page.get("/api/v1/me").status_code == 401
