"""The web app through Flask's test client: log-in, roles, CSRF, tokens, the event workflow, audited media,
device registration, statistics/CSV, OpenAPI coverage, health and metrics."""

from __future__ import annotations

import os
import re

import pytest
from support.web import PASSWORD, csrf_token, insert_event, insert_media, login, make_central, token_for

from kuzet.central.auth import audit
from kuzet.central.web import create_app


@pytest.fixture
def central_options():
    return {"accounts": True}  # one account per role (support.web)


@pytest.fixture
def app(central):
    return create_app(central)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_secret_key_file_is_created_private_and_reused(central, app):
    path = central.data_dir / "secret.key"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert create_app(central).secret_key == app.secret_key


def test_pages_need_login_and_api_answers_401(app):
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.get("/api/v1/events")
    assert response.status_code == 401 and "error" in response.get_json()
    assert client.get("/api/v1/events", headers=bearer("kzt_forged")).status_code == 401


def test_login_sets_a_hardened_cookie_and_logout_ends_it(app):
    client = app.test_client()
    response = login(client, "operator")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/").status_code == 200
    page = client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert client.get("/").status_code == 302


def test_secure_cookie_when_configured(tmp_path):
    central = make_central(tmp_path, http={"secure_cookies": True})
    client = create_app(central).test_client()
    assert "Secure" in login(client, "operator").headers["Set-Cookie"]


def test_wrong_password_and_open_redirect_refused(app):
    client = app.test_client()
    response = login(client, "operator", "not the password")
    assert response.status_code == 401 and "wrong username or password" in response.get_data(as_text=True)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        page = client.get("/login").get_data(as_text=True)
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"username": "operator", "password": PASSWORD, "csrf_token": csrf_token(page)},
        )
        assert response.headers["Location"] == "/", target


def test_csrf_needed_for_session_changes_but_not_for_tokens(app, central):
    event = insert_event(central)
    client = app.test_client()
    login(client, "operator")
    assert client.post(f"/api/v1/events/{event['event_id']}/ack").status_code == 400
    token = csrf_token(client.get("/").get_data(as_text=True))
    response = client.post(f"/api/v1/events/{event['event_id']}/ack", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["event"]["status"] == "acknowledged"
    other = insert_event(central)
    response = app.test_client().post(
        f"/api/v1/events/{other['event_id']}/ack", headers=bearer(token_for(central, "operator"))
    )
    assert response.status_code == 200


def test_event_workflow_over_the_api_is_audited(app, central):
    event = insert_event(central)
    eid = event["event_id"]
    headers = bearer(token_for(central, "operator"))
    client = app.test_client()
    assert client.post(f"/api/v1/events/{eid}/ack", headers=headers).status_code == 200
    assert client.post(f"/api/v1/events/{eid}/ack", headers=headers).status_code == 409
    response = client.post(f"/api/v1/events/{eid}/assign", json={"assignee": "ghost"}, headers=headers)
    assert response.status_code == 409 and "no active account" in response.get_json()["error"]
    response = client.post(f"/api/v1/events/{eid}/assign", json={"assignee": "supervisor"}, headers=headers)
    assert response.get_json()["event"]["assigned_to"] == "supervisor"
    response = client.post(f"/api/v1/events/{eid}/close", json={"note": " "}, headers=headers)
    assert response.status_code == 400 and "note" in response.get_json()["error"]  # a blank note
    response = client.post(
        f"/api/v1/events/{eid}/close", json={"note": "patrol found nobody"}, headers=headers
    )
    assert response.get_json()["event"]["status"] == "closed"
    assert client.post(f"/api/v1/events/{eid}/hold", json={"hold": True}, headers=headers).status_code == 403
    sup = bearer(token_for(central, "supervisor"))
    assert client.post(f"/api/v1/events/{eid}/hold", json={"hold": True}, headers=sup).get_json()["event"][
        "hold"
    ]
    actions = [e["action"] for e in audit.entries(central.db(), target=f"event:{eid}")]
    assert actions == ["event.hold", "event.close", "event.assign", "event.acknowledge"]
    assert client.post("/api/v1/events/NOSUCHEVENT/ack", headers=headers).status_code == 404


def test_assigning_a_dispatched_event_keeps_it_dispatched(app, central):
    event = insert_event(central, status="dispatched")
    headers = bearer(token_for(central, "operator"))
    response = app.test_client().post(
        f"/api/v1/events/{event['event_id']}/assign", json={"assignee": "operator"}, headers=headers
    )
    assert response.get_json()["event"]["status"] == "dispatched"
    assert response.get_json()["event"]["assigned_to"] == "operator"


def test_event_filters(app, central):
    insert_event(central, device="cam-01", severity="high", zone="platform")
    insert_event(central, device="cam-02", severity="low", zone="gate", event_type="crowd")
    insert_event(central, device="cam-02", severity="low", zone="gate", status="closed")
    client = app.test_client()
    headers = bearer(token_for(central, "operator"))

    def count(query):
        return len(client.get(f"/api/v1/events?{query}", headers=headers).get_json()["events"])

    assert count("") == 3
    assert count("device=cam-02") == 2
    assert count("severity=low&type=crowd") == 1
    assert count("zone=platform") == 1
    assert count("status=open") == 2
    assert count("status=closed") == 1
    assert count("limit=1") == 1


def test_media_views_are_audited_once_per_view_and_technicians_are_refused(app, central):
    event = insert_event(central)
    clip = os.urandom(5000)
    sha = insert_media(central, clip, "clip", "video/mp4", event["event_id"])
    client = app.test_client()
    login(client, "operator")
    response = client.get(f"/media/{sha}")
    assert response.status_code == 200 and response.data == clip and response.mimetype == "video/mp4"
    assert "no-store" in response.headers["Cache-Control"]
    response = client.get(f"/media/{sha}", headers={"Range": "bytes=1000-1999"})
    assert response.status_code == 206 and response.data == clip[1000:2000]
    views = audit.entries(central.db(), action="media.view")
    assert len(views) == 1 and views[0]["actor"] == "operator"
    assert views[0]["target"] == f"event:{event['event_id']}"

    tech = app.test_client()
    login(tech, "technician")
    assert tech.get(f"/media/{sha}").status_code == 403
    assert client.get(f"/media/{'0' * 64}").status_code == 404
    assert client.get("/media/..%2F..%2Fsecret.key").status_code == 404


def test_event_detail_page_shows_evidence_and_records_the_viewer(app, central):
    event = insert_event(central)
    snap = insert_media(central, b"\xff\xd8jpeg", "snapshot", "image/jpeg", event["event_id"])
    central.db()["events"].update(event["event_id"], {"snapshot_sha256": snap})
    central.db()["event_updates"].insert_all(
        [
            {
                "msg_id": "A" * 26,
                "event_id": event["event_id"],
                "seq": 0,
                "state": "open",
                "ts": event["started_at"],
                "score": 0.5,
            },
            {
                "msg_id": "B" * 26,
                "event_id": event["event_id"],
                "seq": 1,
                "state": "update",
                "ts": event["started_at"],
                "score": 0.9,
            },
        ]
    )
    client = app.test_client()
    login(client, "operator")
    html = client.get(f"/events/{event['event_id']}").get_data(as_text=True)
    assert f"/media/{snap}" in html and "Track timeline" in html and "platform" in html
    html = client.get(f"/events/{event['event_id']}").get_data(as_text=True)
    assert "opened the event" in html
    assert [e["actor"] for e in audit.entries(central.db(), action="event.view")] == ["operator", "operator"]


def test_device_registration_and_revocation(app, central):
    client = app.test_client()
    tech = bearer(token_for(central, "technician"))
    body = {
        "device_id": "cam-07",
        "kind": "camera",
        "name": "Lenin St / Toraygyrov",
        "site": "pavlodar",
        "lat": 52.28,
        "lon": 76.95,
    }
    response = client.post("/api/v1/devices", json=body, headers=tech)
    assert response.status_code == 201
    device = client.get("/api/v1/devices/cam-07", headers=tech).get_json()
    assert device["registered_at"] and device["online"] is False and device["status"] == {}
    assert client.post("/api/v1/devices", json=body, headers=tech).status_code == 200  # re-flash
    bad = client.post("/api/v1/devices", json={**body, "kind": "toaster", "extra": 1}, headers=tech)
    assert bad.status_code == 400 and "kind" in bad.get_json()["error"] and "extra" in bad.get_json()["error"]
    operator = bearer(token_for(central, "operator"))
    assert client.post("/api/v1/devices", json=body, headers=operator).status_code == 403
    assert client.post("/api/v1/devices/cam-07/revoke", headers=operator).status_code == 403
    response = client.post("/api/v1/devices/cam-07/revoke", headers=tech)
    assert response.status_code == 200 and response.get_json()["revoked_at"]
    assert client.post("/api/v1/devices/cam-99/revoke", headers=tech).status_code == 404
    actions = [e["action"] for e in audit.entries(central.db(), target="device:cam-07")]
    assert actions == ["device.revoke", "device.reregister", "device.register"]


def test_device_status_is_parsed_and_problems_named(app, central):
    import json

    from kuzet.shared import timeutil

    central.db()["devices"].insert(
        {
            "device_id": "cam-03",
            "kind": "camera",
            "online": 1,
            "last_seen": timeutil.now_wire(),
            "status": json.dumps({"cpu_temp_c": 86.0, "disk_free_mb": 120.0, "fps_processed": 9.5}),
        }
    )
    central.db()["devices"].insert(
        {"device_id": "cam-04", "kind": "camera", "online": 1, "last_seen": "2025-01-01T00:00:00.000Z"}
    )
    headers = bearer(token_for(central, "technician"))
    devices = {
        d["device_id"]: d
        for d in app.test_client().get("/api/v1/devices", headers=headers).get_json()["devices"]
    }
    assert devices["cam-03"]["online"] is True and devices["cam-03"]["status"]["fps_processed"] == 9.5
    assert any("hot" in p for p in devices["cam-03"]["problems"]) and any(
        "disk" in p for p in devices["cam-03"]["problems"]
    )
    assert devices["cam-04"]["online"] is False and devices["cam-04"]["problems"] == ["offline"]


def test_stats_and_csv(app, central):
    for zone in ("gate", "gate", "platform"):
        insert_event(central, zone=zone)
    client = app.test_client()
    headers = bearer(token_for(central, "operator"))
    stats = client.get("/api/v1/stats?period=hour&by=zone", headers=headers).get_json()
    assert stats["total"] == 3 and stats["groups"] == ["gate", "platform"] and len(stats["buckets"]) == 24
    assert sum(stats["counts"]["gate"]) == 2
    csv_text = client.get("/api/v1/stats.csv?period=day&by=zone", headers=headers).get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    # For a spreadsheet: a byte-order mark, headers in the reader's language, days of the site's time zone.
    assert lines[0] == "\ufeffDay (Asia/Almaty),Zone,Events" and any(
        line.endswith(",gate,2") for line in lines
    )
    assert client.get("/api/v1/stats?period=year", headers=headers).status_code == 400
    login(client, "operator")
    assert "<svg" in client.get("/stats?by=camera").get_data(as_text=True)


def test_roles_see_what_they_may(app, central):
    clients = {}
    for role in ("operator", "supervisor", "technician", "admin"):
        clients[role] = app.test_client()
        login(clients[role], role)
    assert clients["operator"].get("/admin/audit").status_code == 403
    assert clients["supervisor"].get("/admin/audit").status_code == 200
    assert clients["technician"].get("/").headers["Location"] == "/devices"  # their start page
    assert clients["technician"].get(f"/events/{insert_event(central)['event_id']}").status_code == 403
    assert clients["technician"].get("/devices").status_code == 200
    assert clients["supervisor"].get("/admin/users").status_code == 200
    page = clients["supervisor"].get("/admin/users").get_data(as_text=True)
    assert (
        clients["supervisor"].post("/admin/users", data={"csrf_token": csrf_token(page)}).status_code == 403
    )
    page = clients["admin"].get("/admin/users").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "username": "new.op", "password": PASSWORD, "role": "operator"}
    clients["admin"].post("/admin/users", data=form)
    assert login(app.test_client(), "new.op").status_code == 302


def test_audit_api_and_page_show_a_broken_chain(app, central):
    client = app.test_client()
    login(client, "supervisor")
    assert client.get("/api/v1/audit/verify").get_json() == {"ok": True, "first_bad_seq": None}
    central.db().execute("DROP TRIGGER audit_no_update")
    central.db().execute("UPDATE audit SET actor = 'nobody' WHERE seq = 2")
    central.db().conn.commit()
    assert client.get("/api/v1/audit/verify").get_json() == {"ok": False, "first_bad_seq": 2}
    assert "hash chain broken at entry 2" in client.get("/admin/audit").get_data(as_text=True)


def test_openapi_describes_every_api_route(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    described = {
        (path, method.upper()) for path, operations in document["paths"].items() for method in operations
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):  # ours, the stream's and routing's alike
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # <ulid:dispatch_id>: {dispatch_id}
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == described


def test_healthz_and_metrics(app, central):
    insert_event(central, severity="critical")
    client = app.test_client()
    health = client.get("/healthz")  # this app has no ingest: central cannot do its job, and says why
    assert health.status_code == 503 and health.get_json()["database"] == "ok"
    assert "ingest is not running" in health.get_json()["problems"][0]
    assert client.get("/metrics").status_code == 401
    text = client.get("/metrics", headers=bearer(token_for(central, "technician"))).get_data(as_text=True)
    assert 'kuzet_events_open{severity="critical"} 1.0' in text
    assert "kuzet_http_requests_total" in text


def test_malformed_bodies_get_clear_errors(app, central):
    event = insert_event(central)
    client = app.test_client()
    headers = bearer(token_for(central, "operator"))
    response = client.post(f"/api/v1/events/{event['event_id']}/close", data="not json", headers=headers)
    assert response.status_code == 400 and "JSON object" in response.get_json()["error"]
    assert client.get("/api/v1/events?limit=lots", headers=headers).status_code == 400
    assert client.get("/api/v1/events?status=open", headers=headers).status_code == 200


def test_admin_makes_a_token_on_the_page_shown_once(app, central):
    import re

    admin = app.test_client()
    login(admin, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "username": "technician", "name": "laptop 3"}
    shown = admin.post("/admin/tokens", data=form).get_data(as_text=True)
    token = re.search(r'<code id="new-token">([^<]+)</code>', shown).group(1)
    assert token not in admin.get("/admin/users").get_data(as_text=True)
    assert app.test_client().get("/api/v1/devices", headers=bearer(token)).status_code == 200


def test_a_failing_view_answers_500_in_json_and_the_app_keeps_serving(app, central, monkeypatch):
    from kuzet.central.store import queries

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(queries, "list_devices", broken)
    client = app.test_client()
    headers = bearer(token_for(central, "technician"))
    response = client.get("/api/v1/devices", headers=headers)
    assert response.status_code == 500 and "logged" in response.get_json()["error"]
    assert "disk on fire" not in response.get_data(as_text=True)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
