"""Clip reassembly's rows on both stores (SQLite, PostgreSQL): chunks out of order and repeated make one
verified clip with its media row; a stalled clip's missing chunks are asked for; a clip the device reports
lost keeps what central knew of it; two ingest workers sharing the spool that take a clip's last chunks at
once join it once; a claim left by a worker killed while joining is taken over once stale."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import timedelta

import pytest

from kuzet.central.ingest import clip_claims
from kuzet.central.ingest.clips import ClipAssembler
from kuzet.central.store import portable
from kuzet.central.store.media import MediaStore
from kuzet.shared import ids, messages, timeutil
from kuzet.shared.messages import ClipChunk

CHUNK = 1000


def chunks_of(data: bytes) -> list[ClipChunk]:
    clip_id = ids.new_id()
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    return [
        ClipChunk(
            device="cam-1",
            clip_id=clip_id,
            index=i,
            count=len(pieces),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            chunk_sha256=hashlib.sha256(piece).hexdigest(),
            content_type="video/mp4",
            data=messages.to_base64(piece),
        )
        for i, piece in enumerate(pieces)
    ]


def requests(sent) -> list[messages.ClipRequest]:
    return [messages.decode(topic, payload) for topic, payload in sent]


def lost_message(clip_id) -> messages.ClipLost:
    return messages.ClipLost(device="cam-1", clip_id=clip_id, reason="quota", detail="why")


@pytest.fixture
def sent():
    return []


@pytest.fixture
def assembler(db, tmp_path, sent):
    media = MediaStore(db, tmp_path / "media")
    return ClipAssembler(db, media, tmp_path / "spool", lambda topic, payload: sent.append((topic, payload)))


def _clip(db, clip_id: str) -> dict:
    return portable.row(db, "SELECT * FROM clips WHERE clip_id = ?", [clip_id])


def test_chunks_out_of_order_and_repeated_make_one_verified_clip(assembler, db, tmp_path):
    data = os.urandom(3500)
    chunks = chunks_of(data)
    assert [assembler.handle("pavlodar", c) for c in (chunks[2], chunks[0], chunks[2], chunks[1])] == [
        None,
        None,
        None,
        None,
    ]
    assert assembler.handle("pavlodar", chunks[3]) == "verified"
    clip = _clip(db, chunks[0].clip_id)
    assert (clip["state"], clip["received"]) == ("verified", 4)
    media = portable.row(db, "SELECT size, kind FROM media WHERE sha256 = ?", [chunks[0].sha256])
    assert (media["size"], media["kind"]) == (len(data), "clip")
    assert not (tmp_path / "spool" / chunks[0].clip_id).exists()


def test_a_stalled_clip_is_asked_for_and_a_lost_one_is_marked(assembler, db, sent):
    chunks = chunks_of(os.urandom(3500))
    assembler.handle("pavlodar", chunks[1])
    assert assembler.request_missing(stalled_after_s=0) == 1
    assert requests(sent)[0].missing == [0, 2, 3]
    assembler.lost("pavlodar", lost_message(chunks[0].clip_id))
    clip = _clip(db, chunks[0].clip_id)
    assert (clip["state"], clip["lost_reason"], clip["sha256"]) == ("lost", "quota: why", chunks[0].sha256)


class Joins:
    """The media store's ``adopt`` (a joined clip stored), counted."""

    def __init__(self, media: MediaStore):
        self.calls: list[str] = []
        self._adopt = media.adopt
        media.adopt = self

    def __call__(self, src, sha256, **kwargs):
        self.calls.append(sha256)
        return self._adopt(src, sha256, **kwargs)


def ingest_worker(store, tmp_path, sent) -> ClipAssembler:
    """One ingest worker's assembler: each thread its own connection, the spool and media folder shared."""
    media = MediaStore(store.db, tmp_path / "media")
    return ClipAssembler(
        store.db, media, tmp_path / "spool", lambda topic, payload: sent.append((topic, payload))
    )


def test_two_workers_taking_a_clips_last_chunks_at_once_join_it_once(store, tmp_path, sent, monkeypatch):
    chunks = chunks_of(os.urandom(3500))
    workers = [ingest_worker(store, tmp_path, sent) for _ in range(2)]
    joins = [Joins(worker.media) for worker in workers]
    for chunk in chunks[:-2]:
        assert workers[0].handle("pavlodar", chunk) is None
    # Each worker looks at the spool only once both have written their chunk (both find the clip complete),
    # and joins only once both have tried to claim it.
    both_written, both_tried = threading.Barrier(2, timeout=10), threading.Barrier(2, timeout=10)

    def once_both_have_written(look):
        def received(clip_id):
            both_written.wait()
            return look(clip_id)

        return received

    def once_both_have_tried(db, clip_id):
        claim = take(db, clip_id)
        both_tried.wait()
        return claim

    for worker in workers:
        worker._received = once_both_have_written(worker._received)
    take = clip_claims.take
    monkeypatch.setattr(clip_claims, "take", once_both_have_tried)
    outcomes, errors = [], []

    def last_chunk(worker, chunk):
        try:
            outcomes.append(worker.handle("pavlodar", chunk))
        except Exception as exc:  # shown by the assertion below
            errors.append(exc)

    pairs = zip(workers, chunks[-2:], strict=True)
    threads = [threading.Thread(target=last_chunk, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and sorted(outcomes, key=str) == [None, "verified"]
    assert sum(len(j.calls) for j in joins) == 1
    with store.connection() as db:
        assert _clip(db, chunks[0].clip_id)["state"] == "verified"
        assert portable.row(db, "SELECT count(*) AS n FROM media")["n"] == 1
    assert sorted((tmp_path / "spool").iterdir()) == []  # no chunks and no joined file left
    assert sent == []  # nothing asked for again


class Killed(BaseException):
    """The worker is killed: nothing of it runs on (no ``except Exception``, as under SIGKILL)."""


def test_a_claim_left_by_a_worker_killed_while_joining_is_taken_over_once_stale(store, tmp_path, sent):
    chunks = chunks_of(os.urandom(3500))
    clip_id = chunks[0].clip_id
    killed, survivor = (ingest_worker(store, tmp_path, sent) for _ in range(2))
    for chunk in chunks[:-1]:
        killed.handle("pavlodar", chunk)

    def killed_while_joining(db, site, row, claim):
        (tmp_path / "spool" / f"{clip_id}.{claim.claim_id}.joined").write_bytes(b"half of it")
        raise Killed

    killed._join = killed_while_joining
    with pytest.raises(Killed):
        killed.handle("pavlodar", chunks[-1])

    with store.connection() as db:
        assert _clip(db, clip_id)["state"] == "joining"
        # While the claim is fresh, nobody else joins the clip, and the device's late clip_lost changes nothing.
        assert survivor.handle("pavlodar", chunks[-1]) is None
        assert survivor.request_missing(stalled_after_s=0) == 0
        assert survivor.lost("pavlodar", lost_message(clip_id)) is None
        assert _clip(db, clip_id)["state"] == "joining"
        # The claim goes stale: the stalled-clip round takes it over and joins the clip.
        stale = timeutil.utc_now() - timedelta(seconds=clip_claims.STALE_AFTER_S + 1)
        portable.execute(
            db, "UPDATE clips SET claimed_at = ? WHERE clip_id = ?", [timeutil.to_wire(stale), clip_id]
        )
        joins = Joins(survivor.media)
        assert survivor.request_missing(stalled_after_s=30) == 0
        clip = _clip(db, clip_id)
        assert (clip["state"], clip["claim_id"], clip["claimed_at"]) == ("verified", None, None)
    assert joins.calls == [chunks[0].sha256] and sent == []
    assert sorted((tmp_path / "spool").iterdir()) == []  # the killed worker's half-joined file too


def test_a_worker_slow_to_join_keeps_its_claim_by_renewing_it(store, tmp_path, sent, monkeypatch):
    """A clip handed to a slow object store takes longer than a stale claim's age: the joining worker renews
    its claim all along, so nobody takes the clip over meanwhile, and it is joined once."""
    monkeypatch.setattr(clip_claims, "RENEW_EVERY_S", 0.1)
    monkeypatch.setattr(clip_claims, "STALE_AFTER_S", 0.5)
    chunks = chunks_of(os.urandom(3500))
    clip_id = chunks[0].clip_id
    slow, other = (ingest_worker(store, tmp_path, sent) for _ in range(2))
    for chunk in chunks[:-1]:
        slow.handle("pavlodar", chunk)
    adopt, joining, taken_over = slow.media.adopt, threading.Event(), []

    def slow_adopt(src, sha256, **kwargs):
        joining.set()
        time.sleep(2.0)  # four times the stale age
        return adopt(src, sha256, **kwargs)

    slow.media.adopt = slow_adopt
    outcome = []
    joiner = threading.Thread(target=lambda: outcome.append(slow.handle("pavlodar", chunks[-1])))
    joiner.start()
    assert joining.wait(10)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # the other worker tries to take it over all the while
        with store.connection() as db:
            taken_over.append(clip_claims.take(db, clip_id))
        other.request_missing(stalled_after_s=0)
        time.sleep(0.1)
    joiner.join(timeout=10)
    assert outcome == ["verified"] and set(taken_over) == {None}
    with store.connection() as db:
        assert _clip(db, clip_id)["state"] == "verified"
        assert portable.row(db, "SELECT count(*) AS n FROM media")["n"] == 1


def test_only_the_holder_ends_a_claim(db, assembler):
    chunks = chunks_of(os.urandom(1500))
    assembler.handle("pavlodar", chunks[0])
    first = clip_claims.take(db, chunks[0].clip_id)
    assert first is not None and clip_claims.take(db, chunks[0].clip_id) is None
    with portable.transaction(db):
        assert not clip_claims.end(db, clip_claims.Claim(chunks[0].clip_id, ids.new_id()), "verified")
        assert clip_claims.end(db, first, "receiving")
    assert _clip(db, chunks[0].clip_id)["state"] == "receiving"
    with pytest.raises(ValueError, match="a claim ends in one of"):
        clip_claims.end(db, first, "lost")
