"""Retention by age and by size, with evidence hold, on a real database and real files."""

from __future__ import annotations

import importlib.util
from datetime import timedelta

import pytest
from support.ingest import SITE, dead_letter_rows, event, new_id

from kuzet.central.store import dead_letters, events
from kuzet.central.store.media import MediaStore
from kuzet.central.store.retention import GIB, apply_retention
from kuzet.shared import timeutil

NOW = timeutil.utc_now()
OLD = timeutil.to_wire(NOW - timedelta(days=40))
RECENT = timeutil.to_wire(NOW - timedelta(days=2))


@pytest.fixture
def media(central):
    return MediaStore(central.db, central.media_dir)


def add_event(central, media, received_at: str, *, hold: bool = False, picture: bytes | None = None) -> dict:
    """An event with two timeline entries and a snapshot, received at ``received_at``."""
    db = central.db()
    event_id = new_id()
    picture = picture or f"jpeg of {event_id}".encode()
    sha = media.put(picture, kind="snapshot", content_type="image/jpeg", device="cam-1", event_id=event_id)
    db.execute("UPDATE media SET created_at = ? WHERE sha256 = ?", [received_at, sha])
    with db.conn:
        for seq in (0, 1):
            message = event("cam-1", event_id, seq, snapshot_sha256=sha)
            events.apply(db.conn, [events.Received(message, SITE, received_at)])
        db.conn.execute("UPDATE events SET hold = ? WHERE event_id = ?", [int(hold), event_id])
    return {"event_id": event_id, "sha": sha, "file": media.path(sha)}


def count(central, table: str, where: str = "1", *params) -> int:
    return central.db().execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]


def test_old_events_go_with_their_timeline_and_media_unless_held(central, media):
    old = add_event(central, media, OLD)
    held = add_event(central, media, OLD, hold=True)
    recent = add_event(central, media, RECENT)

    report = apply_retention(central.db(), central.media_dir, retention_days=30, max_media_gb=50, now=NOW)

    assert (report.events, report.event_updates, report.media) == (1, 2, 1)
    assert count(central, "events", "event_id = ?", old["event_id"]) == 0
    assert count(central, "event_updates", "event_id = ?", old["event_id"]) == 0
    assert count(central, "media", "sha256 = ?", old["sha"]) == 0
    assert not old["file"].exists()
    for kept in (held, recent):
        assert count(central, "events", "event_id = ?", kept["event_id"]) == 1
        assert count(central, "event_updates", "event_id = ?", kept["event_id"]) == 2
        assert kept["file"].exists() and media.path(kept["sha"]) == kept["file"]
    # Nothing left to do: a second run removes nothing.
    assert not apply_retention(central.db(), central.media_dir, retention_days=30, max_media_gb=50, now=NOW)


def test_a_file_shared_with_a_held_event_stays(central, media):
    same_bytes = b"the same frame, sent for two events"
    old = add_event(central, media, OLD, picture=same_bytes)
    held = add_event(central, media, RECENT, hold=True, picture=same_bytes)
    assert old["sha"] == held["sha"]

    apply_retention(central.db(), central.media_dir, retention_days=30, max_media_gb=50, now=NOW)

    assert count(central, "events", "event_id = ?", old["event_id"]) == 0
    assert held["file"].exists() and media.path(held["sha"]) is not None


def test_over_the_size_limit_the_oldest_media_goes_first_but_never_held_media(central, media):
    ages = [30, 20, 10, 5]  # days; the oldest event is held
    made = []
    for days in ages:
        received = timeutil.to_wire(NOW - timedelta(days=days))
        made.append(add_event(central, media, received, hold=days == 30, picture=bytes([days]) * 1000))
    limit_gb = 2500 / GIB  # room for two of the four files

    report = apply_retention(
        central.db(), central.media_dir, retention_days=365, max_media_gb=limit_gb, now=NOW
    )

    assert (report.media, report.media_bytes, report.events) == (2, 2000, 0)
    held, oldest_free, newer, newest = made
    assert held["file"].exists()
    assert not oldest_free["file"].exists() and not newer["file"].exists()
    assert newest["file"].exists()
    # The events stay (they are within the age limit) but no longer point at a file that is gone.
    snapshot = central.db().execute(
        "SELECT snapshot_sha256 FROM events WHERE event_id = ?", [newer["event_id"]]
    )
    assert snapshot.fetchone()[0] is None
    assert count(central, "events") == 4


def test_old_dead_letters_are_removed(central):
    conn = central.db().conn
    with conn:
        dead_letters.add(conn, "kuzet/v1/x/cam-1/up/event", b"old junk", "not JSON", OLD, 1024)
        dead_letters.add(conn, "kuzet/v1/x/cam-1/up/event", b"new junk", "not JSON", RECENT, 1024)

    report = apply_retention(central.db(), central.media_dir, retention_days=30, max_media_gb=50, now=NOW)

    assert report.dead_letters == 1
    assert [d["payload"] for d in dead_letter_rows(central)] == [b"new junk"]


@pytest.mark.skipif(
    importlib.util.find_spec("kuzet.central.auth") is None, reason="the audit log is not installed"
)
def test_deletions_are_audited_as_the_system(central, media):
    from kuzet.central.auth import audit

    old = add_event(central, media, OLD)
    apply_retention(central.db(), central.media_dir, retention_days=30, max_media_gb=50, now=NOW)

    entries = [dict(r) for r in central.db().query("SELECT actor, action, detail FROM audit ORDER BY seq")]
    assert entries and all(e["actor"] == "system" for e in entries)
    assert any(old["event_id"] in e["detail"] for e in entries if e["action"] == "retention.delete_events")
    assert audit.verify(central.db())[0]


def test_an_old_event_still_being_updated_stays(central, media):
    long_running = add_event(central, media, OLD)
    conn = central.db().conn
    with conn:
        update = event("cam-1", long_running["event_id"], 2, "update")
        events.apply(conn, [events.Received(update, SITE, RECENT)])

    report = apply_retention(central.db(), central.media_dir, retention_days=30, max_media_gb=50, now=NOW)

    assert report.events == 0
    assert count(central, "events", "event_id = ?", long_running["event_id"]) == 1
