"""Handing sealed evidence segments to the upload path, so that a kill at any moment loses none.

A segment is handed over in one outbox transaction: its record (the ``evidence`` message, which central checks
the chain with), the promise of its recording (``ClipSpool.promise``) and the hand-over mark (the highest index
handed over) commit together. The recording then moves into the clip spool, which queues its chunks and
fulfils the promise in one more transaction.

At start ``recover`` finishes whatever a killed predecessor left: a seal cut short and the recording that was
in progress (``EvidenceStore.recover``), segments sealed into the chain but never handed over, and promised
recordings never queued. Each ends uploaded, or reported lost to central with the reason (``clip_lost``):
central's chain report never waits in vain nor misses a segment. Running it twice queues nothing twice.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kuzet.edge.badge.evidence import EvidenceStore
from kuzet.edge.delivery.clips import ClipSpool
from kuzet.edge.delivery.outbox import PRIORITY_RESULT
from kuzet.edge.delivery.publisher import Publisher
from kuzet.shared.messages import EvidenceSegment, encode

log = logging.getLogger(__name__)

_TABLE = "evidence_handover"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    one INTEGER PRIMARY KEY CHECK (one = 0),
    last_index INTEGER NOT NULL
);
"""
UNREADABLE = (
    "the badge stopped while recording and not one frame of the partial file reads back; "
    "its bytes are sealed in the chain and kept on the badge"
)


class EvidenceHandover:
    def __init__(self, store: EvidenceStore, spool: ClipSpool, publisher: Publisher, topic: str):
        self.store, self.spool, self.publisher, self.topic = store, spool, publisher, topic
        outbox = publisher.outbox
        new = not outbox.query("SELECT 1 FROM sqlite_master WHERE name = ?", (_TABLE,))
        outbox.add_table(_SCHEMA)
        next_index, _ = store.head()
        if new and next_index > 0:
            # A badge that kept no mark yet handed over every segment it sealed, as soon as it sealed it.
            with outbox.transaction() as tx:
                self._mark(tx, next_index - 1)

    def last_handed(self) -> int:
        rows = self.publisher.outbox.query(f"SELECT last_index FROM {_TABLE}")
        return rows[0][0] if rows else -1

    def hand_over(self, segment: EvidenceSegment, video: Path, *, known_playable: bool = False) -> None:
        """Queue the record, then the recording (``known_playable``: it was closed properly, do not check)."""
        with self.publisher.transaction() as tx:
            # The record goes first and ahead of the chunks, so that central checks the chain as it grows.
            tx.put(self.topic, encode(segment), kind="evidence", priority=PRIORITY_RESULT)
            ClipSpool.promise(tx, segment.segment_id, recording=video, purpose="evidence")
            self._mark(tx, segment.index)
        self._upload(segment.segment_id, video, known_playable)

    def recover(self) -> list[str]:
        """Before recording starts; returns what the officer should be told."""
        notes = self.store.recover()
        for segment, video in self.store.records_after(self.last_handed()):
            log.warning("evidence: segment %d was sealed but never handed over; queued now", segment.index)
            self.hand_over(segment, video)
        for promise in self.spool.promises():
            if promise.purpose == "evidence" and not self.spool.resume(promise.clip_id):
                self._upload(promise.clip_id, promise.recording, known_playable=False)
        return notes

    def _upload(self, segment_id: str, video: Path, known_playable: bool) -> None:
        if not video.exists():
            self.spool.lost(
                segment_id, "failed", "the sealed recording is no longer on the badge", purpose="evidence"
            )
        elif not (known_playable or _playable(video)):
            self.spool.lost(segment_id, "interrupted", UNREADABLE, purpose="evidence")
        else:
            try:
                self.spool.add(video, clip_id=segment_id, purpose="evidence")
            except (OSError, ValueError) as exc:  # a full or failing card: central must not wait for it
                self.spool.lost(segment_id, "failed", f"could not be queued: {exc}", purpose="evidence")

    @staticmethod
    def _mark(tx, index: int) -> None:
        tx.execute(
            f"INSERT INTO {_TABLE} (one, last_index) VALUES (0, ?)"
            " ON CONFLICT(one) DO UPDATE SET last_index = max(last_index, excluded.last_index)",
            (index,),
        )


def _playable(video: Path) -> bool:
    from kuzet.edge.evidence.readback import playable  # PyAV, loaded only when a recording must be checked

    return playable(video)
