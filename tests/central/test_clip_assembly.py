"""Central's side of clip delivery: the media store and the clip assembler (chunks out of order, duplicated,
corrupted, or a whole clip that does not match its hash)."""

from __future__ import annotations

import hashlib
import os

import pytest

from kuzet.central.ingest.clips import ClipAssembler, ClipRejected
from kuzet.central.store.media import MediaStore
from kuzet.central.store.schema import open_database
from kuzet.shared import ids, messages, timeutil, topics
from kuzet.shared.messages import ClipChunk

CHUNK = 1000


@pytest.fixture
def db(tmp_path):
    database = open_database(tmp_path / "kuzet.db")
    yield database
    database.close()


@pytest.fixture
def media(db, tmp_path):
    return MediaStore(db, tmp_path / "media")


@pytest.fixture
def sent():
    return []


@pytest.fixture
def assembler(db, media, tmp_path, sent):
    return ClipAssembler(db, media, tmp_path / "spool", lambda topic, payload: sent.append((topic, payload)))


def chunks_of(data: bytes, *, clip_id=None, event_id=None, sha256=None) -> list[ClipChunk]:
    clip_id = clip_id or ids.new_id()
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    return [
        ClipChunk(
            device="cam-1",
            clip_id=clip_id,
            event_id=event_id,
            index=i,
            count=len(pieces),
            size=len(data),
            sha256=sha256 or hashlib.sha256(data).hexdigest(),
            chunk_sha256=hashlib.sha256(piece).hexdigest(),
            content_type="video/mp4",
            data=messages.to_base64(piece),
        )
        for i, piece in enumerate(pieces)
    ]


def requests(sent) -> list[messages.ClipRequest]:
    return [messages.decode(topic, payload) for topic, payload in sent]


def test_put_is_idempotent_and_addressed_by_hash(media, db):
    data = b"\xff\xd8 a jpeg"
    first = media.put(data, kind="snapshot", content_type="image/jpeg", device="cam-1", width=4, height=3)
    again = media.put(data, kind="snapshot", content_type="image/jpeg", device="cam-1")
    assert first == again == hashlib.sha256(data).hexdigest()
    assert media.path(first).read_bytes() == data
    assert media.path(first).parent.name == first[:2]
    assert db["media"].count == 1
    assert db["media"].get(first)["width"] == 4


def test_path_refuses_names_that_are_not_hashes(media):
    assert media.path("../../etc/passwd") is None
    assert media.path("0" * 64) is None  # well formed, not stored
    assert media.path("A" * 64) is None


def test_adopt_moves_the_file_in(media, tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"video bytes")
    sha = hashlib.sha256(b"video bytes").hexdigest()
    assert media.adopt(src, sha, kind="clip", content_type="video/mp4", device="cam-1") == sha
    assert not src.exists()
    assert media.path(sha).read_bytes() == b"video bytes"


def test_clip_out_of_order_with_duplicates_is_verified_and_linked(assembler, db, media, sent):
    event_id = ids.new_id()
    db["events"].insert(
        {"event_id": event_id, "device": "cam-1", "event_type": "crowd", "severity": "high",
         "started_at": timeutil.now_wire(), "status": "new"}
    )  # fmt: skip
    data = os.urandom(4500)
    chunks = chunks_of(data, event_id=event_id)
    results = [
        assembler.handle("pavlodar", c) for c in [chunks[3], chunks[0], chunks[0], chunks[4], chunks[1]]
    ]
    assert results == [None] * 5
    assert db["clips"].get(chunks[0].clip_id)["received"] == 4
    assert assembler.handle("pavlodar", chunks[2]) == "verified"
    assert assembler.handle("pavlodar", chunks[2]) is None  # a late duplicate changes nothing

    clip = db["clips"].get(chunks[0].clip_id)
    assert clip["state"] == "verified"
    assert db["events"].get(event_id)["clip_id"] == chunks[0].clip_id
    assert media.path(clip["sha256"]).read_bytes() == data
    assert db["media"].get(clip["sha256"])["kind"] == "clip"
    assert sent == []


def test_bad_chunk_is_rejected_counted_and_asked_for_again(assembler, db, sent):
    data = os.urandom(2500)
    chunks = chunks_of(data)
    bad = chunks[1].model_copy(update={"data": messages.to_base64(b"x" * CHUNK)})
    assert assembler.handle("pavlodar", chunks[0]) is None
    assert assembler.handle("pavlodar", bad) is None
    assert assembler.handle("pavlodar", chunks[2]) is None
    clip = db["clips"].get(chunks[0].clip_id)
    assert (clip["bad_chunks"], clip["received"], clip["state"]) == (1, 2, "receiving")
    [request] = requests(sent)
    assert sent[0][0] == topics.down("pavlodar", "cam-1", "clip_request")
    assert (request.device, request.clip_id, request.missing) == ("cam-1", chunks[0].clip_id, [1])
    assert assembler.handle("pavlodar", chunks[1]) == "verified"


def test_whole_file_mismatch_fails_and_asks_for_everything(assembler, db, sent, media):
    data = os.urandom(2100)
    wrong = hashlib.sha256(b"something else").hexdigest()
    chunks = chunks_of(data, sha256=wrong)
    assert [assembler.handle("kostanay", c) for c in chunks] == [None, None, "failed"]
    clip = db["clips"].get(chunks[0].clip_id)
    assert (clip["state"], clip["received"]) == ("failed", 0)
    [request] = requests(sent)
    assert request.missing == []  # all of it
    assert media.path(wrong) is None
    # the device sends the right file again under the same clip id: accepted
    good = chunks_of(data, clip_id=chunks[0].clip_id, sha256=wrong)
    assert [assembler.handle("kostanay", c) for c in good][-1] == "failed"


def test_request_missing_asks_only_for_stalled_clips_and_only_what_is_missing(assembler, db, sent):
    stalled = chunks_of(os.urandom(3500))
    fresh = chunks_of(os.urandom(3500))
    assembler.handle("pavlodar", stalled[0])
    assembler.handle("pavlodar", stalled[2])
    assembler.handle("pavlodar", fresh[0])
    db.execute(
        "UPDATE clips SET updated_at = '2021-01-01T00:00:00.000Z' WHERE clip_id = ?", [stalled[0].clip_id]
    )
    db.conn.commit()
    assert assembler.request_missing(stalled_after_s=30) == 1
    [request] = requests(sent)
    assert (request.clip_id, request.missing) == (stalled[0].clip_id, [1, 3])
    assert assembler.request_missing(stalled_after_s=30) == 0  # asked just now: not again at once


def test_assembly_survives_a_central_restart(db, media, tmp_path, sent):
    data = os.urandom(3000)
    chunks = chunks_of(data)
    first = ClipAssembler(db, media, tmp_path / "spool", lambda t, p: sent.append((t, p)))
    first.handle("pavlodar", chunks[0])
    first.handle("pavlodar", chunks[1])
    second = ClipAssembler(db, media, tmp_path / "spool", lambda t, p: sent.append((t, p)))
    assert second.handle("pavlodar", chunks[2]) == "verified"
    assert db["clips"].get(chunks[0].clip_id)["state"] == "verified"
    assert media.path(hashlib.sha256(data).hexdigest()).read_bytes() == data


def test_a_chunk_that_contradicts_its_clip_is_rejected(assembler, db):
    chunks = chunks_of(os.urandom(2500))
    assembler.handle("pavlodar", chunks[0])
    other_device = chunks[1].model_copy(update={"device": "cam-2"})
    with pytest.raises(ClipRejected, match="disagrees"):
        assembler.handle("pavlodar", other_device)
    other_size = chunks[1].model_copy(update={"size": 9999})
    with pytest.raises(ClipRejected, match="disagrees"):
        assembler.handle("pavlodar", other_size)
    assert db["clips"].get(chunks[0].clip_id)["received"] == 1
    assert [assembler.handle("pavlodar", c) for c in chunks[1:]] == [None, "verified"]


def test_a_clip_incomplete_for_too_long_is_abandoned(db, media, tmp_path, sent):
    assembler = ClipAssembler(
        db, media, tmp_path / "spool", lambda t, p: sent.append((t, p)), give_up_after_s=60
    )
    chunks = chunks_of(os.urandom(2500))
    assembler.handle("pavlodar", chunks[0])
    old = "2021-01-01T00:00:00.000Z"
    db.execute(
        "UPDATE clips SET created_at = ?, updated_at = ? WHERE clip_id = ?", [old, old, chunks[0].clip_id]
    )
    db.conn.commit()
    assert assembler.request_missing(stalled_after_s=30) == 0
    assert db["clips"].get(chunks[0].clip_id)["state"] == "abandoned"
    assert sent == [] and not (tmp_path / "spool" / chunks[0].clip_id).exists()


def lost_message(clip_id, reason="quota", device="cam-1", event_id=None) -> messages.ClipLost:
    return messages.ClipLost(device=device, clip_id=clip_id, event_id=event_id, reason=reason, detail="why")


def test_a_clip_the_device_reports_lost_is_marked_and_no_longer_asked_for(assembler, db, sent, tmp_path):
    chunks = chunks_of(os.urandom(3500))
    assembler.handle("pavlodar", chunks[0])
    db.execute("UPDATE clips SET updated_at = '2021-01-01T00:00:00.000Z'")
    db.conn.commit()
    assembler.lost("pavlodar", lost_message(chunks[0].clip_id))
    clip = db["clips"].get(chunks[0].clip_id)
    assert (clip["state"], clip["lost_reason"], clip["sha256"]) == ("lost", "quota: why", chunks[0].sha256)
    assert not (tmp_path / "spool" / chunks[0].clip_id).exists()  # its chunks are not kept
    assert assembler.request_missing(stalled_after_s=0) == 0 and sent == []
    assert [assembler.handle("pavlodar", c) for c in chunks[1:]] == [None, None, None]  # late: ignored
    assert db["clips"].get(chunks[0].clip_id)["state"] == "lost"


def test_a_clip_lost_before_any_chunk_is_recorded_for_its_event(assembler, db):
    clip_id, event_id = ids.new_id(), ids.new_id()
    assert assembler.lost("pavlodar", lost_message(clip_id, "interrupted", event_id=event_id)) == event_id
    clip = db["clips"].get(clip_id)
    assert (clip["state"], clip["event_id"], clip["device"], clip["site"]) == (
        "lost",
        event_id,
        "cam-1",
        "pavlodar",
    )


def test_a_verified_clip_stays_verified_and_another_device_cannot_mark_it(assembler, db):
    chunks = chunks_of(os.urandom(1500))
    assert [assembler.handle("pavlodar", c) for c in chunks][-1] == "verified"
    assert assembler.lost("pavlodar", lost_message(chunks[0].clip_id, "gone")) is None
    assert db["clips"].get(chunks[0].clip_id)["state"] == "verified"
    with pytest.raises(ClipRejected, match="belongs to cam-1"):
        assembler.lost("pavlodar", lost_message(chunks[0].clip_id, device="cam-2"))


def test_a_gone_report_keeps_what_central_knows_of_the_clip(assembler, db):
    """A device asked for a clip it no longer has cannot say whose it was: central keeps purpose and event."""
    event_id = ids.new_id()
    chunks = chunks_of(os.urandom(2500), event_id=event_id)
    assembler.handle("pavlodar", chunks[0].model_copy(update={"purpose": "evidence"}))
    assert assembler.lost("pavlodar", lost_message(chunks[0].clip_id, "gone")) == event_id
    clip = db["clips"].get(chunks[0].clip_id)
    assert (clip["state"], clip["purpose"], clip["event_id"]) == ("lost", "evidence", event_id)
