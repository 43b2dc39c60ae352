"""Body-camera evidence: recorded from real footage in chained segments, uploaded through the durable
outbox to central, which verifies the chain; any edit, deletion or forged segment is detected."""

from __future__ import annotations

import pytest
from support.patrol import SITE, Camera, Centre, point, start_badge, wait_for

from kuzet.central.routing.evidence import verify_device
from kuzet.shared import evidence, ids, timeutil, topics
from kuzet.shared.messages import EvidenceSegment, encode


@pytest.fixture
def recorded(tmp_path, mosquitto, footage):
    """A badge that recorded at least three segments, all received and verified by central."""
    centre = Centre(tmp_path, mosquitto.url)
    agent = start_badge(
        tmp_path,
        mosquitto.url,
        "badge-7",
        point(0),
        centre,
        camera={"source": str(footage / "pets09-s2l1" / "vtest.avi")},
        evidence={"enabled": True, "mode": "always", "segment_s": 1.0, "fps": 4, "width": 320},
    )
    try:
        verified = "select count(*) from clips where purpose = 'evidence' and state = 'verified'"
        wait_for(
            lambda: centre.db().execute(verified).fetchone()[0] >= 3,
            timeout_s=40,
            what="3 segments at central",
        )
    finally:
        agent.stop()
    yield centre, agent
    centre.stop()


def test_recorded_chain_verifies_and_edits_or_deletions_are_detected(recorded, tmp_path):
    centre, agent = recorded
    db = centre.db()
    rows = list(db.query("select idx, chain_ok, problem from evidence_segments order by idx"))
    assert [r["idx"] for r in rows] == list(range(len(rows)))
    assert all(r["chain_ok"] == 1 for r in rows), rows
    problems = verify_device(db, centre.central.media_dir, "badge-7")
    # Only the very last segment may still be on its way; everything that arrived is intact.
    assert all(p.what == "its recording is missing" for p in problems)
    complete = [r["idx"] for r in rows][: len(rows) - len(problems)]
    assert len(complete) >= 3

    # Someone edits a recording in central's media store...
    [sha] = db.execute("select sha256 from evidence_segments where idx = 1").fetchone()
    stored = centre.central.media_dir / sha[:2] / sha
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    problems = verify_device(db, centre.central.media_dir, "badge-7")
    assert any(p.index == 1 and "edited" in p.what for p in problems)

    # ...or deletes a segment's record to hide it.
    db.execute("delete from evidence_segments where idx = 2")
    db.conn.commit()
    problems = verify_device(db, centre.central.media_dir, "badge-7")
    assert any(p.index == 3 and "missing or out of order" in p.what for p in problems)


def test_forged_or_replaced_segment_is_flagged_on_arrival(recorded, mosquitto):
    centre, agent = recorded
    db = centre.db()
    last = db.execute(
        "select idx, chain_sha256, ended_at from evidence_segments order by idx desc limit 1"
    ).fetchone()
    started = timeutil.from_wire(last[2])
    ended = timeutil.utc_now()
    sha = "ab" * 32

    def segment(index, prev, chain=None, **extra):
        chain = chain or evidence.chain_hash(
            prev, sha, index, timeutil.to_wire(started), timeutil.to_wire(ended)
        )
        return EvidenceSegment(
            device="badge-7",
            segment_id=ids.new_id(),
            index=index,
            started_at=started,
            ended_at=ended,
            size=1000,
            sha256=sha,
            prev_chain_sha256=prev,
            chain_sha256=chain,
            content_type="video/x-msvideo",
            **extra,
        )

    forger = Camera(mosquitto.url, device="badge-7")
    try:
        # A segment that skips an index (one was dropped), then one that does not link to its predecessor.
        skipping = segment(last[0] + 2, last[1])
        forger.raw(topics.up(SITE, "badge-7", "evidence"), encode(skipping))
        wrong_link = segment(last[0] + 3, "cd" * 32)
        forger.raw(topics.up(SITE, "badge-7", "evidence"), encode(wrong_link))
        # A record whose fields were changed after it was hashed.
        altered = segment(last[0] + 4, wrong_link.chain_sha256, chain="ef" * 32)
        forger.raw(topics.up(SITE, "badge-7", "evidence"), encode(altered))
    finally:
        forger.stop()

    def flagged():
        rows = list(db.query("select problem from evidence_segments where chain_ok = 0 order by idx"))
        return rows if len(rows) == 3 else None

    problems = [r["problem"] for r in wait_for(flagged, what="three broken links")]
    assert "missing or out of order" in problems[0]
    assert "does not link" in problems[1]
    assert "altered" in problems[2]
    assert db["audit"].count_where("action = 'evidence.chain_broken'") == 3
    assert sum("evidence from badge-7" in text for text in centre.alert_texts()) == 3


def test_chain_survives_a_badge_reboot(tmp_path):
    store_dir = tmp_path / "evidence"
    from kuzet.edge.badge.evidence import EvidenceStore

    first = EvidenceStore(store_dir, "badge-1")
    video = tmp_path / "a.avi"
    video.write_bytes(b"first recording")
    one, _ = first.seal(video, timeutil.utc_now(), timeutil.utc_now(), None)
    again = EvidenceStore(store_dir, "badge-1")  # a new process after a reboot
    video.write_bytes(b"second recording")
    two, _ = again.seal(video, timeutil.utc_now(), timeutil.utc_now(), None)
    assert (one.index, two.index) == (0, 1)
    assert two.prev_chain_sha256 == one.chain_sha256
    assert evidence.verify([one, two]) == []
