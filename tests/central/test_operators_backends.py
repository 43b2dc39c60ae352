"""The operators' side of events, the page's reads and the devices' write side on both stores (SQLite,
PostgreSQL): an event stored by ingest's repository is acknowledged, assigned, held and closed, each change
audited in its transaction; the queue, the counters, the statistics and the device list read the same rows."""

from __future__ import annotations

import json

import pytest
from support.ingest import SITE, event, new_id

from kuzet.central.auth import audit, users
from kuzet.central.store import devices, portable, queries, workflow
from kuzet.central.store.events import Received
from kuzet.shared import messages, timeutil


def _stored_event(store, device="cam-1") -> str:
    event_id = new_id()
    now = timeutil.now_wire()
    with store.transaction() as conn:
        store.events.apply(conn, [Received(event(device, event_id, 1), SITE, now)])
    return event_id


def test_an_event_goes_through_the_operators_hands_audited(store):
    event_id = _stored_event(store)
    with store.connection() as db:
        users.create_user(db, "anna", "correct horse battery", "operator")
        assert queries.queue_counters(db)["by_status"] == {"new": 1}
        assert workflow.acknowledge(db, event_id, "anna")["status"] == "acknowledged"
        with pytest.raises(workflow.WorkflowError, match="already acknowledged"):
            workflow.acknowledge(db, event_id, "boris")
        with pytest.raises(workflow.WorkflowError, match="no active account"):
            workflow.assign(db, event_id, "anna", "nobody")
        assert workflow.assign(db, event_id, "anna", "anna")["assigned_to"] == "anna"
        held = workflow.set_hold(db, event_id, "anna", True)
        # A change returns the event as a reader reads it afterwards (flags as booleans), without reading back.
        assert held["hold"] is True and held == queries.get_event(db, event_id)
        closed = workflow.close(db, event_id, "anna", "Патруль на месте, всё спокойно")
        assert (closed["status"], closed["closed_note"]) == ("closed", "Патруль на месте, всё спокойно")
        assert closed == queries.get_event(db, event_id)
        assert [e["event_id"] for e in queries.list_events(db, {"status": "closed"})] == [event_id]
        assert queries.list_events(db, {"status": "open"}) == []
        actions = [e["action"] for e in audit.entries(db, target=f"event:{event_id}")]
        assert audit.verify(db) == (True, None)
    assert actions == ["event.close", "event.hold", "event.assign", "event.acknowledge"]


def test_the_queue_statistics_and_timeline_read_the_stored_rows(store):
    first, second = _stored_event(store, "cam-1"), _stored_event(store, "cam-2")
    with store.connection() as db:
        listed = queries.list_events(db, {"device": "cam-2"})
        assert [e["event_id"] for e in listed] == [second]
        assert queries.distinct_values(db)["device"] == ["cam-1", "cam-2"]
        counts = queries.event_counts(db, "hour", "camera")
        assert counts["total"] == 2 and sorted(counts["groups"]) == ["cam-1", "cam-2"]
        assert [row["seq"] for row in queries.event_timeline(db, first)] == [1]
        assert queries.event_media(db, queries.get_event(db, first))["snapshot"] is None


def test_devices_are_created_unregistered_kept_latest_and_marked_online(store):
    early, late = "2026-11-21T10:00:00.000Z", "2026-11-21T10:05:00.000Z"
    with store.transaction() as conn:
        devices.record(conn, {"cam-1": devices.Heard(SITE, late)}, existing=())
    with store.connection() as db:  # heard of (an event, say) but not whether it is online: offline
        assert portable.rows(db, "SELECT online FROM devices") == [{"online": 0}]
    with store.transaction() as conn:
        assert list(devices.of_batch(conn, ["cam-1", "cam-2"])) == ["cam-1"]  # cam-2 is new
        status = messages.Status(device="cam-1", kind="camera", software_version="1.4.0", uptime_s=60.0)
        offline = messages.Availability(device="cam-2", state="offline")
        devices.record(conn, devices.heard_in([(status, SITE, early), (offline, SITE, early)]), {"cam-1"})
    with store.connection() as db:
        rows = {row["device_id"]: row for row in portable.rows(db, "SELECT * FROM devices")}
    assert rows["cam-1"]["last_seen"] == late  # an older message never moves it back
    assert (rows["cam-1"]["online"], rows["cam-1"]["software_version"]) == (1, "1.4.0")
    assert (rows["cam-2"]["online"], rows["cam-2"]["registered_at"]) == (0, None)


def test_a_batchs_heartbeats_keep_the_latest_and_availability_applies_in_arrival_order(store):
    def status(device: str, at: str, version: str) -> messages.Status:
        return messages.Status(device=device, kind="camera", software_version=version, uptime_s=1.0, ts=at)

    def offline(device: str) -> messages.Availability:
        return messages.Availability(device=device, state="offline")

    newer, older = "2026-11-21T10:05:00.000Z", "2026-11-21T10:00:00.000Z"
    batch = [
        offline("cam-1"),
        status("cam-1", newer, "2.0.0"),
        status("cam-1", older, "1.0.0"),  # arrived late
        status("cam-2", newer, "2.0.0"),
        offline("cam-2"),
    ]
    heard = devices.heard_in((message, SITE, newer) for message in batch)
    assert list(heard) == ["cam-1", "cam-2"]  # one row each to write
    with store.transaction() as conn:
        devices.record(conn, heard, existing=())
    with store.connection() as db:
        rows = {row["device_id"]: row for row in portable.rows(db, "SELECT * FROM devices")}
    # The late heartbeat changes nothing kept, but a heartbeat after the last will means online again.
    assert (rows["cam-1"]["software_version"], rows["cam-1"]["online"]) == ("2.0.0", 1)
    assert json.loads(rows["cam-1"]["status"])["software_version"] == "2.0.0"
    assert rows["cam-1"]["status_at"] == newer and rows["cam-1"]["kind"] == "camera"
    assert rows["cam-2"]["online"] == 0  # its last will came after its heartbeat

    # A later batch with a heartbeat older than the kept one: online again, the kept heartbeat stays.
    with store.transaction() as conn:
        devices.record(conn, devices.heard_in([(status("cam-2", older, "1.0.0"), SITE, newer)]), heard)
    with store.connection() as db:
        [row] = portable.rows(db, "SELECT * FROM devices WHERE device_id = 'cam-2'")
    assert (row["online"], row["software_version"], row["status_at"]) == (1, "2.0.0", newer)
    # A batch that says nothing of whether it is online (an event, a position) leaves that as it was.
    with store.transaction() as conn:
        devices.record(conn, {"cam-2": devices.Heard(SITE, newer)}, heard)
    with store.connection() as db:
        assert portable.rows(db, "SELECT online FROM devices WHERE device_id = 'cam-2'") == [{"online": 1}]
