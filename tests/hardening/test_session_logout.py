"""Issue 17, item 9: the session cookie kept working after log-out (for the cookie's whole 13 hours).

The attack as found: log in, keep a copy of the session cookie, log out, send the copy again."""

from __future__ import annotations

from hardening_http import PASSWORD, Browser

from kuzet.central.auth import users


def _replay(web, cookies: dict[str, str]) -> Browser:
    thief = Browser(web.url, source="127.0.0.9")
    thief.cookies = dict(cookies)
    return thief


def test_a_cookie_copied_before_logout_is_refused_after_it(web):
    operator = Browser(web.url)
    assert operator.login("operator").status == 302
    assert operator.get("/api/v1/me").status == 200
    stolen = dict(operator.cookies)
    assert _replay(web, stolen).get("/api/v1/me").status == 200  # the copy works while the session lives

    assert operator.post("/logout").status == 302
    assert operator.get("/api/v1/me").status == 401

    thief = _replay(web, stolen)
    assert thief.get("/api/v1/me").status == 401
    page = thief.get("/")
    assert page.status == 302 and "/login" in page.headers["location"]


def test_logging_out_one_computer_leaves_the_others_logged_in(web):
    desk, laptop = Browser(web.url), Browser(web.url, source="127.0.0.2")
    assert desk.login("supervisor").status == 302 and laptop.login("supervisor").status == 302
    assert desk.post("/logout").status == 302
    assert desk.get("/api/v1/me").status == 401
    assert laptop.get("/api/v1/me").status == 200


def test_password_reset_and_disabling_end_every_session(web, central):
    first, second = Browser(web.url), Browser(web.url, source="127.0.0.2")
    assert first.login("operator").status == 302 and second.login("operator").status == 302
    kept = dict(first.cookies)
    users.create_user(central.db(), "operator", PASSWORD + "!", "operator", actor="test")  # reset
    assert first.get("/api/v1/me").status == 401 and second.get("/api/v1/me").status == 401
    assert _replay(web, kept).get("/api/v1/me").status == 401

    assert first.login("operator", PASSWORD + "!").status == 302
    users.set_disabled(central.db(), "operator", True, actor="test")
    assert first.get("/api/v1/me").status == 401
    rows = central.db().execute("SELECT count(*) FROM web_sessions WHERE username = 'operator'").fetchone()
    assert rows[0] == 0
