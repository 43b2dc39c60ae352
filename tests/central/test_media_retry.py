"""Issue 17 item 4 in detail: a media folder that refuses one clip never stops the round for the others, and
the refused clip is joined once the folder takes it."""

from __future__ import annotations

import errno
import hashlib
import os

from support.ingest_faults import clip

from kuzet.central.ingest.clips import ClipAssembler
from kuzet.central.store.media import MediaStore, MediaUnavailable
from kuzet.central.store.schema import open_database


class _Refusing(MediaStore):
    """A media store whose disk is full for the files named in ``refused`` (the whole-disk case is
    test_ingest_durability's, on a real full file system)."""

    refused: frozenset[str] = frozenset()

    def adopt(self, src, sha256, **kwargs):
        if sha256 in self.refused:
            raise MediaUnavailable(f"media folder {self.root}: {os.strerror(errno.ENOSPC)}")
        return super().adopt(src, sha256, **kwargs)


def test_request_missing_goes_on_past_a_clip_the_media_folder_refuses(tmp_path):
    db = open_database(tmp_path / "kuzet.db")
    media = _Refusing(db, tmp_path / "media")
    assembler = ClipAssembler(db, media, tmp_path / "spool", lambda topic, payload: None)
    first, second = clip(os.urandom(2500)), clip(os.urandom(2600))
    media.refused = frozenset({first[0].sha256, second[0].sha256})
    for chunk in first + second:
        try:
            assembler.handle("pavlodar", chunk)
        except MediaUnavailable:  # the last chunk of each: joining is refused, the chunks stay in the spool
            pass
    states = dict(db.execute("SELECT clip_id, state FROM clips").fetchall())
    assert set(states.values()) == {"receiving"}

    media.refused = frozenset({first[0].sha256})  # the folder takes the second clip, still not the first
    assembler.request_missing(stalled_after_s=0)
    states = dict(db.execute("SELECT clip_id, state FROM clips").fetchall())
    assert states == {first[0].clip_id: "receiving", second[0].clip_id: "verified"}
    assert assembler.media_refused and "No space" in assembler.media_refused

    media.refused = frozenset()
    assembler.request_missing(stalled_after_s=0)
    assert db.execute("SELECT count(*) FROM clips WHERE state = 'verified'").fetchone()[0] == 2
    assert assembler.media_refused is None
    joined = media.path(first[0].sha256)
    assert joined is not None and hashlib.sha256(joined.read_bytes()).hexdigest() == first[0].sha256
    db.close()
