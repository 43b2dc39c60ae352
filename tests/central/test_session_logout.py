"""Issue 17, item 9: the session cookie kept working after log-out (for the cookie's whole 13 hours).

The attack as found: log in, keep a copy of the session cookie, log out, send the copy again."""

from __future__ import annotations

import pytest
from support.http_client import Browser
from support.web import PASSWORD

from kuzet.central.auth import users


def _replay(web_server, cookies: dict[str, str]) -> Browser:
    thief = Browser(web_server.url, source="127.0.0.9")
    thief.cookies = dict(cookies)
    return thief


@pytest.fixture
def central_options():
    return {"accounts": True}  # one account per role (support.web)


def test_a_cookie_copied_before_logout_is_refused_after_it(web_server):
    operator = Browser(web_server.url)
    assert operator.login("operator").status == 302
    assert operator.get("/api/v1/me").status == 200
    stolen = dict(operator.cookies)
    assert (
        _replay(web_server, stolen).get("/api/v1/me").status == 200
    )  # the copy works while the session lives

    assert operator.post("/logout").status == 302
    assert operator.get("/api/v1/me").status == 401

    thief = _replay(web_server, stolen)
    assert thief.get("/api/v1/me").status == 401
    page = thief.get("/")
    assert page.status == 302 and "/login" in page.headers["location"]


def test_logging_out_one_computer_leaves_the_others_logged_in(web_server):
    desk, laptop = Browser(web_server.url), Browser(web_server.url, source="127.0.0.2")
    assert desk.login("supervisor").status == 302 and laptop.login("supervisor").status == 302
    assert desk.post("/logout").status == 302
    assert desk.get("/api/v1/me").status == 401
    assert laptop.get("/api/v1/me").status == 200


def test_password_reset_and_disabling_end_every_session(web_server, central):
    first, second = Browser(web_server.url), Browser(web_server.url, source="127.0.0.2")
    assert first.login("operator").status == 302 and second.login("operator").status == 302
    kept = dict(first.cookies)
    users.create_user(central.db(), "operator", PASSWORD + "!", "operator", actor="test")  # reset
    assert first.get("/api/v1/me").status == 401 and second.get("/api/v1/me").status == 401
    assert _replay(web_server, kept).get("/api/v1/me").status == 401

    assert first.login("operator", PASSWORD + "!").status == 302
    users.set_disabled(central.db(), "operator", True, actor="test")
    assert first.get("/api/v1/me").status == 401
    rows = central.db().execute("SELECT count(*) FROM web_sessions WHERE username = 'operator'").fetchone()
    assert rows[0] == 0
