"""The body-camera evidence hash chain, computed by the badge and checked by central.

``chain_sha256 = sha256(prev_chain_sha256 + sha256 + str(index) + started_at + ended_at)`` over hex strings
and wire timestamps (see ``shared.messages.EvidenceSegment``). The first segment of a badge has no
``prev_chain_sha256`` (the empty string is hashed). Editing a segment changes its ``sha256``; dropping,
inserting or re-ordering one breaks the ``prev_chain_sha256``/``index`` links after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kuzet.shared import timeutil
from kuzet.shared.messages import EvidenceSegment


def chain_hash(prev_chain_sha256: str | None, sha256: str, index: int, started_at: str, ended_at: str) -> str:
    text = (prev_chain_sha256 or "") + sha256 + str(index) + started_at + ended_at
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def segment_chain_hash(segment: EvidenceSegment) -> str:
    return chain_hash(
        segment.prev_chain_sha256,
        segment.sha256,
        segment.index,
        timeutil.to_wire(segment.started_at),
        timeutil.to_wire(segment.ended_at),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Problem:
    index: int
    segment_id: str
    what: str


def check_link(segment: EvidenceSegment, previous: EvidenceSegment | None) -> str | None:
    """What is wrong with ``segment`` following ``previous`` (None: it is the first), or None if nothing."""
    if segment_chain_hash(segment) != segment.chain_sha256:
        return "its chain hash does not match its own fields (the record was altered)"
    if previous is None:
        if segment.index != 0 or segment.prev_chain_sha256 is not None:
            return f"the chain starts at index {segment.index}: earlier segments are missing"
        return None
    if segment.index != previous.index + 1:
        return f"index {segment.index} follows {previous.index}: a segment is missing or out of order"
    if segment.prev_chain_sha256 != previous.chain_sha256:
        return "it does not link to the segment before it (a segment was replaced or removed)"
    if segment.started_at < previous.ended_at:
        return "it starts before the previous segment ended"
    return None


def verify(segments: Iterable[EvidenceSegment], files: dict[str, Path] | None = None) -> list[Problem]:
    """Check a badge's whole chain in order of arrival; with ``files`` (segment_id -> path), each file's
    bytes against the hash recorded for it. An empty list means the chain is intact."""
    problems: list[Problem] = []
    previous = None
    for segment in segments:
        what = check_link(segment, previous)
        if what:
            problems.append(Problem(segment.index, segment.segment_id, what))
        if files is not None:
            path = files.get(segment.segment_id)
            if path is None or not Path(path).exists():
                problems.append(Problem(segment.index, segment.segment_id, "its recording is missing"))
            elif file_sha256(Path(path)) != segment.sha256:
                problems.append(
                    Problem(segment.index, segment.segment_id, "its recording was edited (SHA-256 differs)")
                )
        previous = segment
    return problems
