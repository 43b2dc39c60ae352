"""What the page and the watchlist keep and read, on both stores (SQLite, PostgreSQL): watchlist entries with
their photos and embeddings, possible matches and the decisions on them, what was pushed to which camera, the
operators' page preferences, and the page's own reads (health gauges, a badge's evidence, dispatches on the
map). The SQL of these modules runs on either connection (central.store.portable); each change is audited."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.web import insert_row, store_event

from kuzet.central import alerts
from kuzet.central.auth import audit, preferences
from kuzet.central.live import LiveHub
from kuzet.central.store import portable, queries, registry
from kuzet.central.watchlist import entries, matches, push
from kuzet.central.watchlist.enrolment import EnrolledFace
from kuzet.shared import ids, timeutil

ALMATY = ZoneInfo("Asia/Almaty")


def _entry(name: str = "Асель Нурланова", days: int = 3) -> entries.EntryInput:
    return entries.parse_input(
        {
            "category": "missing",
            "name": name,
            "case_number": "KZ-2026-0042",
            "authority": "Павлодарская полиция",
            "reason": "пропала 3 декабря",
            "expires_on": (timeutil.utc_now() + timedelta(days=days)).strftime("%Y-%m-%d"),
        },
        ALMATY,
    )


def _face(seed: int) -> EnrolledFace:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return EnrolledFace(vector / np.linalg.norm(vector), (1.0, 2.0, 101.0, 102.0), 640, 480, 0.8125, 0.9375)


def test_a_watchlist_entry_keeps_its_photos_and_embeddings_audited(db):
    entry_id = entries.create(db, "supervisor", _entry())
    jpeg = b"\xff\xd8\xff\xe0 a photo \x00\x01\x02"
    face = _face(1)
    photo_id = entries.add_photo(db, "supervisor", entry_id, jpeg, face)

    [listed] = entries.listing(db, "supervisor")
    assert (listed["id"], listed["name"], listed["photos"]) == (entry_id, "Асель Нурланова", 1)
    assert entries.view(db, "supervisor", entry_id)["photo_ids"] == [photo_id]
    assert entries.photo(db, "supervisor", entry_id, photo_id) == jpeg  # bytes as given, NUL included
    ids_, embeddings, earliest = entries.current_embeddings(db)
    assert ids_ == [entry_id] and np.array_equal(embeddings[0], face.embedding)
    assert earliest == _entry().expires_at and entries.current_count(db) == 1

    entries.update(db, "supervisor", entry_id, _entry(name="Асель Н."))
    assert entries.view(db, "supervisor", entry_id)["name"] == "Асель Н."
    entries.remove(db, "supervisor", entry_id, "найдена")
    assert entries.listing(db, "supervisor") == [] and entries.current_count(db) == 0
    assert portable.rows(db, "SELECT id FROM watchlist_photos") == []  # the photos and embeddings go
    with pytest.raises(LookupError):
        entries.view(db, "supervisor", entry_id)

    actions = [e["action"] for e in audit.entries(db, target=f"watchlist/{entry_id}")][::-1]
    assert actions == [
        "watchlist.create",
        "watchlist.add_photo",
        "watchlist.view",
        "watchlist.view_photo",
        "watchlist.edit",
        "watchlist.view",
        "watchlist.remove",
    ]
    assert audit.verify(db) == (True, None)


def _possible_match(db, entry_id: str, device: str) -> str:
    attributes = {"entry_id": entry_id, "distance": 0.31, "threshold": 0.5, "face_sha256": "f" * 64}
    row = store_event(
        db, event_type="watchlist_match", device=device, label="face", attributes=json.dumps(attributes)
    )
    return row["event_id"]


def test_possible_matches_are_decided_once_and_rejections_counted(db):
    entry_id = entries.create(db, "supervisor", _entry())
    store_event(db, event_type="loitering", attributes=json.dumps({"entry_id": entry_id}))  # not a match
    confirmed = _possible_match(db, entry_id, "cam-01")
    rejected = [_possible_match(db, entry_id, "cam-02") for _ in range(2)]

    listed = matches.listing(db, "supervisor")
    assert sorted(m["event_id"] for m in listed) == sorted([confirmed, *rejected])
    assert {(m["name"], m["state"], m["distance"]) for m in listed} == {("Асель Нурланова", "possible", 0.31)}
    decided = matches.decide(db, "supervisor", confirmed, "confirmed", "то же лицо, шрам над бровью")
    assert (decided["state"], decided["decided_by"]) == ("confirmed", "supervisor")
    with pytest.raises(matches.ReviewError):
        matches.decide(db, "supervisor", confirmed, "rejected", "передумал")
    for event_id in rejected:
        matches.decide(db, "supervisor", event_id, "rejected", "другой человек")
    matches.record_dispatch(db, confirmed, "p-1 sent")
    assert matches.get(db, confirmed)["dispatch"] == "p-1 sent"
    assert matches.view(db, "supervisor", confirmed)["photo_id"] is None  # no photo enrolled

    counted = matches.rejections(db)
    assert counted["per_camera"] == [{"device": "cam-02", "rejected": 2}]
    assert counted["per_entry"] == [
        {"entry_id": entry_id, "name": "Асель Нурланова", "case_number": "KZ-2026-0042", "rejected": 2}
    ]
    assert audit.verify(db) == (True, None)


def test_the_watchlist_goes_to_the_cameras_that_match_faces_and_is_recorded(db):
    for device, status in (
        ("cam-faces", {"watchlist": {"version": None}}),
        ("cam-plain", {"watchlist": None}),
    ):
        registry.register(
            db,
            registry.Registration(device_id=device, kind="camera", name=device, site="pavlodar"),
            actor="test",
        )
        portable.execute(
            db, "UPDATE devices SET status = ? WHERE device_id = ?", [json.dumps(status), device]
        )
    sent = []
    central = SimpleNamespace(
        db=lambda: db,
        hub=LiveHub(),
        publish=lambda topic, payload, retain=False: sent.append((topic, retain)),
    )
    pusher = push.WatchlistPusher(central, Ed25519PrivateKey.generate())
    assert pusher.run_once() == []  # an empty watchlist, never sent: nothing to wipe

    entry_id = entries.create(db, "supervisor", _entry())
    entries.add_photo(db, "supervisor", entry_id, b"\xff\xd8", _face(2))
    assert pusher.run_once() == ["cam-faces"]  # the camera without face matching gets nothing
    assert sent == [("kuzet/v1/pavlodar/cam-faces/down/watchlist", True)]
    assert pusher.run_once() == []  # the same watchlist is not sent again
    entries.remove(db, "supervisor", entry_id, "найдена")
    assert pusher.run_once() == ["cam-faces"]
    [recorded] = portable.rows(db, "SELECT device_id, fingerprint FROM watchlist_pushes")
    assert recorded == {"device_id": "cam-faces", "fingerprint": push.WIPED}
    pushed = [e["action"] for e in audit.entries(db, target="device:cam-faces")]
    assert pushed[:2] == ["watchlist.wiped", "watchlist.pushed"]


def test_an_operators_preferences_follow_the_account(db):
    assert preferences.get(db, "anna") == preferences.Preferences()
    preferences.update(db, "anna", language="kk")
    saved = preferences.update(db, "anna", sound=False)
    assert saved == preferences.Preferences(language="kk", sound=False, notifications=True)
    assert preferences.get(db, "anna") == saved and preferences.get(db, "boris").language is None
    with pytest.raises(ValueError, match="unknown language"):
        preferences.update(db, "anna", language="de")
    assert preferences.get(db, "anna").language == "kk"


def test_the_pages_reads_of_dispatches_evidence_and_gauges(db):
    queries.ping(db)
    event = store_event(db)
    base = {"event_id": event["event_id"], "created_at": timeutil.now_wire()}
    insert_row(db, "dispatches", {**base, "dispatch_id": ids.new_id(), "unit": "p-1", "state": "sent"})
    insert_row(
        db,
        "dispatches",
        {**base, "dispatch_id": ids.new_id(), "unit": "p-2", "state": "resolved", "attempt": 2},
    )
    insert_row(db, "evidence_segments", {"segment_id": ids.new_id(), "device": "p-1", "idx": 0})
    with portable.transaction(db):
        alerts.add(db, "critical", "disk nearly full")

    assert [d["unit"] for d in queries.routing_reads(db).active()] == ["p-1"]
    assert [d["state"] for d in queries.routing_reads(db).find_dispatches(unit="p-2")] == ["resolved"]
    assert (queries.has_evidence(db, "p-1"), queries.has_evidence(db, "p-2")) == (True, False)
    gauges = queries.gauges(db)
    assert gauges["dispatches"] == {"sent": 1, "resolved": 1} and gauges["escalations"] == 1
    assert gauges["alerts_open"] == {"critical": 1} and gauges["dead_letters"] == 0


def test_a_database_error_is_told_from_other_errors(db):
    with pytest.raises(Exception) as raised:
        portable.execute(db, "SELECT * FROM no_such_table")
    assert portable.is_database_error(raised.value)
    assert not portable.is_database_error(ValueError("not the database's"))
