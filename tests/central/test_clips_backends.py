"""Clip reassembly's rows on both stores (SQLite, PostgreSQL): chunks out of order and repeated make one
verified clip with its media row; a stalled clip's missing chunks are asked for; a clip the device reports
lost keeps what central knew of it."""

from __future__ import annotations

import hashlib
import os

import pytest

from kuzet.central.ingest.clips import ClipAssembler
from kuzet.central.store import portable
from kuzet.central.store.media import MediaStore
from kuzet.shared import ids, messages
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
