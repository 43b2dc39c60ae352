"""Badge body-camera evidence at central: each announced segment is checked against the one before it as it
arrives, and a badge's whole chain can be verified against the recordings central holds."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from shared import evidence, timeutil
from shared.evidence import Problem
from shared.messages import EvidenceSegment

_COLUMNS = (
    "segment_id, idx, started_at, ended_at, size, sha256, prev_chain_sha256, chain_sha256, content_type"
)


class EvidenceLedger:
    def __init__(self) -> None:
        self._last: dict[str, EvidenceSegment] = {}  # badge -> its latest segment

    def record(self, db: sqlite_utils.Database, segment: EvidenceSegment) -> str | None:
        """Store the segment's record; return what is wrong with its link to the chain, or None."""
        previous = self._last.get(segment.device)
        if previous is None:
            row = db.execute(
                f"select {_COLUMNS} from evidence_segments where device = ? order by idx desc limit 1",
                [segment.device],
            ).fetchone()
            previous = _segment(segment.device, row) if row else None
        if previous is not None and previous.segment_id == segment.segment_id:
            return None  # a re-delivery
        problem = evidence.check_link(segment, previous)
        self._last[segment.device] = segment
        db["evidence_segments"].upsert(
            {
                "segment_id": segment.segment_id,
                "device": segment.device,
                "idx": segment.index,
                "started_at": timeutil.to_wire(segment.started_at),
                "ended_at": timeutil.to_wire(segment.ended_at),
                "size": segment.size,
                "sha256": segment.sha256,
                "prev_chain_sha256": segment.prev_chain_sha256,
                "chain_sha256": segment.chain_sha256,
                "content_type": segment.content_type,
                "dispatch_id": segment.dispatch_id,
                "received_at": timeutil.now_wire(),
                "chain_ok": int(problem is None),
                "problem": problem,
            },
            pk="segment_id",
        )
        return problem


def verify_device(db: sqlite_utils.Database, media_dir: Path, device: str) -> list[Problem]:
    """Check a badge's whole chain and each recording central received against its recorded hash.
    A segment whose recording has not fully arrived yet is reported as missing."""
    rows = db.execute(f"select {_COLUMNS} from evidence_segments where device = ? order by idx", [device])
    segments = [_segment(device, row) for row in rows]
    files = {}
    for segment in segments:
        clip = db.execute(
            "select sha256 from clips where clip_id = ? and state = 'verified'", [segment.segment_id]
        ).fetchone()
        if clip is not None:
            files[segment.segment_id] = Path(media_dir) / clip[0][:2] / clip[0]
    return evidence.verify(segments, files)


def _segment(device: str, row) -> EvidenceSegment:
    segment_id, idx, started_at, ended_at, size, sha, prev, chain, content_type = row
    return EvidenceSegment(
        device=device,
        segment_id=segment_id,
        index=idx,
        started_at=timeutil.from_wire(started_at),
        ended_at=timeutil.from_wire(ended_at),
        size=size,
        sha256=sha,
        prev_chain_sha256=prev,
        chain_sha256=chain,
        content_type=content_type,
    )
