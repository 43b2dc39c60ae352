"""The triage board's incidents: events of one camera, zone and type within the window fold into one incident
(count, first and last time, latest snapshot, the camera's street name), ordered by severity then waiting time;
bulk acknowledge and close act on every event of the chosen incidents and report what they could not do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.web import csrf_token, login, make_central, store_event

from kuzet.central.auth import preferences
from kuzet.central.store import incidents, registry
from kuzet.central.web import create_app
from kuzet.shared import timeutil

BASE = timeutil.from_wire("2026-12-05T06:00:00.000Z")


def at(minutes: float) -> str:
    return timeutil.to_wire(BASE + timedelta(minutes=minutes))


def register_camera(db) -> None:
    registry.register(
        db,
        registry.Registration(
            device_id="cam-01", kind="camera", name="ул. Торайгырова / Ленина", site="pavlodar"
        ),
        actor="test",
    )


@pytest.fixture
def central(tmp_path):
    central = make_central(tmp_path, triage={"window_s": 600})
    register_camera(central.db())
    yield central
    central.close()


@pytest.fixture
def camera_db(db):
    """``db`` (each store) with the camera registered: the board's folding runs the same on both."""
    register_camera(db)
    return db


def event(db, minutes: float, **fields) -> dict:
    fields = {
        "device": "cam-01",
        "zone": "platform",
        "event_type": "loitering",
        "severity": "medium",
        **fields,
    }
    fields["severity_rank"] = {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1}[fields["severity"]]
    return store_event(db, started_at=at(minutes), received_at=at(minutes), **fields)


def test_refires_within_the_window_are_one_incident(camera_db):
    first = event(camera_db, 0, snapshot_sha256="a" * 64)
    event(camera_db, 4, snapshot_sha256="b" * 64)
    last = event(camera_db, 13, severity="high")  # 9 min after the one before: still within 10
    later = event(camera_db, 30)  # 17 min later: a new incident
    event(camera_db, 5, zone="gate")  # another zone
    event(camera_db, 6, event_type="crowd")  # another type
    found = incidents.open_incidents(camera_db, 600)
    assert sorted(i.count for i in found) == [1, 1, 1, 3]
    folded = next(i for i in found if i.count == 3)
    assert folded.incident_id == first["event_id"] and folded.latest_event_id == last["event_id"]
    assert (folded.first_at, folded.last_at) == (at(0), at(13))
    assert folded.severity == "high"  # the worst of its events
    assert folded.snapshot_sha256 == "b" * 64  # the latest snapshot
    assert folded.camera_name == "ул. Торайгырова / Ленина"
    assert later["event_id"] not in folded.event_ids


def test_ordered_by_severity_then_longest_waiting(camera_db):
    event(camera_db, 10, device="cam-02", severity="medium")
    event(camera_db, 0, device="cam-03", severity="medium")
    event(camera_db, 20, device="cam-04", severity="critical")
    acknowledged = event(camera_db, -10, device="cam-05", severity="medium", status="acknowledged")
    order = [i.device for i in incidents.open_incidents(camera_db, 600)]
    # Critical first; among the medium ones the longest waiting first, and an answered one after those waiting.
    assert order == ["cam-04", "cam-03", "cam-02", "cam-05"]
    assert (
        next(i for i in incidents.open_incidents(camera_db, 600) if i.device == "cam-05").waiting_since
        is None
    )
    assert acknowledged["status"] == "acknowledged"


def test_filters_and_a_time_range_that_finds_closed_ones(camera_db):
    db = camera_db
    event(db, 0, severity="high")
    event(db, 60, severity="low", status="closed")
    assert [i.severity for i in incidents.open_incidents(db, 600, filters={"severity": "high"})] == ["high"]
    assert incidents.open_incidents(db, 600, filters={"zone": "nowhere"}) == []
    found = incidents.open_incidents(db, 600, since=at(30), until=at(90), include_closed=True)
    assert [(i.severity, i.status) for i in found] == [("low", "closed")]


def test_a_changed_group_is_folded_from_its_own_events_not_every_event_of_its_type(central, monkeypatch):
    """The board re-folds the group of every changed event (central.web.board): on a store of 100,000 events
    that read went through every event of the type (a quarter of the store, 10 ms a group) until an index on
    the group's columns; the plan must find the group by its camera and type."""
    from kuzet.central.store import portable

    db = central.db()
    seen, real = [], portable.rows

    def rows(db, sql, params=()):
        seen.append((sql, list(params)))
        return real(db, sql, params)

    monkeypatch.setattr(portable, "rows", rows)
    incidents.open_incidents(db, 600, filters={"device": "cam-01", "zone": "platform", "type": "loitering"})
    [(sql, params)] = seen
    plan = " ".join(step[3] for step in db.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "USING INDEX idx_events_device_event_type_started_at (device=? AND event_type=?)" in plan, plan


@pytest.fixture
def client(central):
    client = create_app(central).test_client()
    login(client, "operator")
    return client


def _csrf(client) -> dict:
    return {"X-CSRFToken": csrf_token(client.get("/incidents").get_data(as_text=True))}


def test_api_lists_incidents_and_acknowledges_them_in_bulk(central, client):
    ids = [event(central.db(), m)["event_id"] for m in (0, 3, 6)]
    other = event(central.db(), 0, device="cam-02", severity="critical")["event_id"]
    listed = client.get("/api/v1/incidents").get_json()
    assert listed["total"] == 2 and listed["window_s"] == 600
    assert [i["count"] for i in listed["incidents"]] == [1, 3]  # the critical one first
    answer = client.post("/api/v1/incidents/ack", json={"event_ids": [*ids, other]}, headers=_csrf(client))
    assert answer.status_code == 200 and answer.get_json()["done"] == [*ids, other]
    again = client.post("/api/v1/incidents/ack", json={"event_ids": ids}, headers=_csrf(client)).get_json()
    assert again["done"] == [] and len(again["skipped"]) == 3  # already acknowledged: said, not fatal
    statuses = {row["status"] for row in central.db().query("SELECT status FROM events")}
    assert statuses == {"acknowledged"}


def test_bulk_close_needs_a_note_and_closes_every_event(central, client):
    ids = [event(central.db(), m)["event_id"] for m in (0, 2)]
    refused = client.post(
        "/api/v1/incidents/close", json={"event_ids": ids, "note": " "}, headers=_csrf(client)
    )
    assert refused.status_code == 400
    done = client.post(
        "/api/v1/incidents/close",
        json={"event_ids": ids, "note": "Наряд проверил, чисто."},
        headers=_csrf(client),
    ).get_json()
    assert done["done"] == ids
    assert client.get("/api/v1/incidents").get_json()["incidents"] == []


def test_technicians_may_not_see_or_act(central):
    client = create_app(central).test_client()
    login(client, "technician")
    assert client.get("/api/v1/incidents").status_code == 403
    assert client.get("/incidents").status_code == 403


def test_interruption_switches_are_kept_with_the_account(central, client):
    saved = client.post("/preferences", json={"sound": False}, headers=_csrf(client))
    assert saved.get_json() == {"sound": False, "notifications": True}
    assert preferences.get(central.db(), "operator").sound is False
    assert client.post("/preferences", json={"sound": "off"}, headers=_csrf(client)).status_code == 400
    page = client.get("/incidents").get_data(as_text=True)
    assert 'id="pref-sound" >' in page and 'id="pref-notifications" checked' in page


def test_a_bad_time_range_is_refused_with_the_reason(client):
    response = client.get("/api/v1/incidents?since=yesterday")
    assert response.status_code == 400 and "since" in response.get_json()["error"]
    assert client.get("/api/v1/incidents?until=").status_code == 400  # empty is no time either
