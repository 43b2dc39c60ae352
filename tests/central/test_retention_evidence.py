"""Retention and the officers' body-camera evidence, end to end over a real Mosquitto: a badge dispatched to an
event records on the dispatch; its recordings (uploaded without an event) are linked to that event, kept while
the event is on evidence hold, and expire with the event, its dispatch and the dispatch's log once released."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from support.chain import next_segment
from support.patrol import SITE, Camera, Centre, point, wait_for
from support.web import token_for

from kuzet.central.auth import audit, users
from kuzet.central.routing.evidence import chain_report, describe, verify_device
from kuzet.central.store.retention import apply_retention
from kuzet.central.web import create_app
from kuzet.shared import messages, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

NOW = timeutil.utc_now()
OLD = timeutil.to_wire(NOW - timedelta(days=40))


class BodyCamera:
    """The evidence side of a badge: chained segment records and their recordings, sent as a badge sends them."""

    def __init__(self, url: str, device: str):
        self.device = device
        self.link = Link(MqttSection(url=url), f"{device}-test").start()
        self.previous: messages.EvidenceSegment | None = None

    def send(self, message) -> None:
        self.link.publish(
            topics.up(SITE, self.device, message.type), messages.encode(message)
        ).wait_for_publish(5)

    def locate(self, at: tuple[float, float]) -> None:
        self.send(
            messages.Location(
                device=self.device, position={"lat": at[0], "lon": at[1]}, fix="gps", duty="available"
            )
        )

    def segment(self, recording: bytes, dispatch_id: str | None, skip: int = 0) -> messages.EvidenceSegment:
        """The next segment of the chain (``skip``: as if that many had been recorded and never sent)."""
        # One second each, back to back, as a badge records them.
        start = None if self.previous else NOW.replace(microsecond=0) - timedelta(minutes=5)
        self.previous = next_segment(
            self.device, self.previous, recording, started=start, skip=skip, dispatch_id=dispatch_id
        )
        return self.previous

    def upload(self, segment: messages.EvidenceSegment, recording: bytes) -> None:
        self.send(
            messages.ClipChunk(
                device=self.device,
                clip_id=segment.segment_id,
                purpose="evidence",
                index=0,
                count=1,
                size=len(recording),
                sha256=segment.sha256,
                chunk_sha256=segment.sha256,
                content_type="video/x-matroska",
                data=messages.to_base64(recording),
            )
        )

    def stop(self) -> None:
        self.link.stop()


def _count(db, table: str, where: str = "1", *params) -> int:
    return db.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]


def _age_everything(db) -> None:
    """As if all of it happened 40 days ago."""
    with db.conn:
        db.execute("UPDATE events SET received_at = ?, updated_at = ?", [OLD, OLD])
        db.execute("UPDATE media SET created_at = ?", [OLD])
        db.execute("UPDATE dispatches SET created_at = ?, updated_at = ?", [OLD, OLD])
        db.execute("UPDATE evidence_segments SET received_at = ?", [OLD])


@pytest.fixture
def on_dispatch(tmp_path, mosquitto):
    """A badge (its evidence side) dispatched to a camera's event: (centre, badge, event_id, dispatch)."""
    centre = Centre(tmp_path, mosquitto.url)
    camera, badge = Camera(mosquitto.url), BodyCamera(mosquitto.url, "badge-1")
    try:
        badge.locate(point(100))
        wait_for(lambda: centre.unit("badge-1"), what="the badge known to routing")
        event_id = camera.event(point(0))
        [dispatch] = wait_for(lambda: centre.dispatches(event_id=event_id), what="the dispatch")
        yield centre, badge, event_id, dispatch
    finally:
        camera.stop()
        badge.stop()
        centre.stop()


def _retain(centre: Centre):
    return apply_retention(centre.db(), centre.central.media_dir, retention_days=30, max_media_gb=50, now=NOW)


def test_body_camera_footage_follows_the_event_it_was_dispatched_to(on_dispatch):
    centre, badge, event_id, dispatch = on_dispatch
    db = centre.db()

    # Recorded on the dispatch, its record announced before the recording arrives: linked on arrival.
    first = b"first recording " * 100
    segment = badge.segment(first, dispatch["dispatch_id"])
    badge.send(segment)
    wait_for(lambda: _count(db, "evidence_segments"), what="the segment recorded by routing")
    badge.upload(segment, first)
    wait_for(lambda: _count(db, "media", "kind = 'evidence'"), what="the first recording stored")
    assert _count(db, "media", "kind = 'evidence' AND event_id = ?", event_id) == 1

    # The recording first, its record after: linked by retention's first step.
    second = b"second recording " * 100
    segment = badge.segment(second, dispatch["dispatch_id"])
    badge.upload(segment, second)
    wait_for(lambda: _count(db, "media", "kind = 'evidence'") == 2, what="the second recording stored")
    badge.send(segment)
    wait_for(lambda: _count(db, "evidence_segments") == 2, what="its record")
    # An old recording made off duty, and a younger one, belonging to no dispatch.
    off_duty = b"off duty " * 100
    loose = badge.segment(off_duty, None)
    badge.send(loose)
    badge.upload(loose, off_duty)
    newest = b"newest " * 100
    anchor = badge.segment(newest, None)
    badge.send(anchor)
    wait_for(lambda: _count(db, "evidence_segments") == 4, what="the off-duty records")
    wait_for(lambda: _count(db, "media", "kind = 'evidence'") == 3, what="the off-duty recording")
    files = {
        row["sha256"]: centre.central.media_dir / row["path"]
        for row in db["media"].rows_where("kind = 'evidence'")
    }
    dispatched = [hashlib.sha256(data).hexdigest() for data in (first, second)]
    with db.conn:
        db.execute("UPDATE events SET hold = 1 WHERE event_id = ?", [event_id])
    _age_everything(db)

    report = _retain(centre)
    assert (report.events, report.dispatches, report.dispatch_log) == (0, 0, 0)
    assert _count(db, "media", "kind = 'evidence' AND event_id = ?", event_id) == 2
    assert all(files[sha].exists() for sha in dispatched)  # held: the officer's footage stays
    assert not files[hashlib.sha256(off_duty).hexdigest()].exists()  # loose and old: gone
    assert report.evidence_segments == 1  # the off-duty record; the newest stays as the chain's anchor
    assert _count(db, "dispatches") == 1 and _count(db, "dispatch_log") >= 1

    with db.conn:
        db.execute("UPDATE events SET hold = 0 WHERE event_id = ?", [event_id])
    report = _retain(centre)
    assert report.events == 1 and report.dispatches == 1 and report.dispatch_log >= 1
    assert report.evidence_segments == 2
    assert not any(files[sha].exists() for sha in dispatched)
    for table in ("events", "dispatches", "dispatch_log", "clips"):
        assert _count(db, table) == 0, table
    [kept] = db["evidence_segments"].rows
    assert kept["segment_id"] == anchor.segment_id
    [entry] = db["audit"].rows_where("action = 'retention.delete_events'")
    assert dispatch["dispatch_id"] in entry["detail"]
    assert segment.chain_sha256 in entry["detail"]  # what was removed from the chain is on record


def test_the_chain_verifies_across_segments_retention_removed_but_not_across_any_other_gap(on_dispatch):
    """Segments 0-1 and 3-4 expire; 2 (recorded on a held event's dispatch) and 5 (the newest) stay. The chain
    still verifies, naming what retention removed; a record deleted by hand, an edited recording, an altered
    retention entry in the audit log and a segment that never came are still named as problems."""
    centre, badge, event_id, dispatch = on_dispatch
    db = centre.db()
    for n in range(6):
        recording = f"recording {n} ".encode() * 100
        segment = badge.segment(recording, dispatch["dispatch_id"] if n == 2 else None)
        badge.send(segment)
        badge.upload(segment, recording)
    wait_for(lambda: _count(db, "clips", "state = 'verified'") == 6, what="six recordings verified")
    # Segment records go through routing's worker, recordings through ingest: either may finish first.
    wait_for(lambda: _count(db, "evidence_segments", "chain_ok = 1") == 6, what="six segments chained")
    before = chain_report(db, centre.central.media_dir, "badge-1")
    assert (before["status"], before["expired"]) == ("verified", [])

    with db.conn:
        db.execute("UPDATE events SET hold = 1 WHERE event_id = ?", [event_id])
    _age_everything(db)
    report = _retain(centre)
    assert report.evidence_segments == 4
    assert [row["idx"] for row in db.query("SELECT idx FROM evidence_segments ORDER BY idx")] == [2, 5]

    after = chain_report(db, centre.central.media_dir, "badge-1")
    assert after["status"] == "verified", after["problems"]
    assert after["expired"] == [{"first": 0, "last": 1}, {"first": 3, "last": 4}]
    assert after["problems"] == [] and (after["first_index"], after["segments"]) == (2, 2)
    assert "chain verified (segments 0..1, 3..4 expired by retention)" in describe(after)
    assert verify_device(db, centre.central.media_dir, "badge-1") == []
    # The same through the API behind the device page (and the check is audited).
    users.create_user(db, "technician", "correct horse battery", "technician", actor="test")
    client = create_app(centre.central).test_client()
    headers = {"Authorization": f"Bearer {token_for(centre.central, 'technician')}"}
    shown = client.get("/api/v1/devices/badge-1/evidence", headers=headers).get_json()
    # The summary the device page shows, in the reader's language (this site's: Russian).
    assert shown["status"] == "verified" and "удалены по сроку хранения" in shown["summary"]

    # A record deleted other than by retention: segment 2 is gone too, with nothing in the audit log.
    middle = next(db.query("SELECT * FROM evidence_segments WHERE idx = 2"))
    with db.conn:
        db.execute("DELETE FROM evidence_segments WHERE idx = 2")
    gap = chain_report(db, centre.central.media_dir, "badge-1")
    assert (gap["status"], gap["gap_at"]) == ("gap", 5)
    with db.conn:
        db["evidence_segments"].insert(middle)

    # The recording kept for the held event is edited.
    stored = centre.central.media_dir / middle["sha256"][:2] / middle["sha256"]
    original = stored.read_bytes()
    stored.write_bytes(original.replace(b"recording 2", b"recording X"))
    edited = chain_report(db, centre.central.media_dir, "badge-1")
    assert (edited["status"], edited["broken_at"]) == ("broken", 2)
    stored.write_bytes(original)
    assert chain_report(db, centre.central.media_dir, "badge-1")["status"] == "verified"

    # Retention's record of removing them is altered in the audit log (its append-only triggers dropped):
    # it is no longer trusted, and the segments it names are missing again.
    [entry] = audit.entries(db, action="retention.delete_evidence")
    assert sorted(s["index"] for s in entry["detail"]["evidence_segments"]) == [0, 1, 3, 4]
    with db.conn:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("UPDATE audit SET ts = ? WHERE seq = ?", [OLD, entry["seq"]])
    forged = chain_report(db, centre.central.media_dir, "badge-1")
    assert (forged["status"], forged["gap_at"], forged["expired"]) == ("gap", 2, [])
    with db.conn:
        db.execute("UPDATE audit SET ts = ? WHERE seq = ?", [entry["ts"], entry["seq"]])
    assert chain_report(db, centre.central.media_dir, "badge-1")["status"] == "verified"

    # A real gap: the badge's next segment says one was recorded in between that never came.
    recording = b"recording 7 " * 100
    skipped = badge.segment(recording, None, skip=1)
    badge.send(skipped)
    badge.upload(skipped, recording)
    wait_for(lambda: _count(db, "clips", "state = 'verified'") == 3, what="the next recording")
    wait_for(lambda: _count(db, "evidence_segments", "idx = 7") == 1, what="its segment record")
    real = chain_report(db, centre.central.media_dir, "badge-1")
    assert (real["status"], real["gap_at"]) == ("gap", 7)
