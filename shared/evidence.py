"""The body-camera evidence hash chain, computed by the badge and checked by central.

``chain_sha256 = sha256(prev_chain_sha256 + sha256 + str(index) + started_at + ended_at)`` over hex strings
and wire timestamps (see ``shared.messages.EvidenceSegment``). The first segment of a badge has no
``prev_chain_sha256`` (the empty string is hashed). Editing a segment changes its ``sha256``; dropping,
inserting or re-ordering one breaks the ``prev_chain_sha256``/``index`` links after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
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


# What a link or a recording of the chain can be found to be, by code: English only, with ``str.format`` fields;
# central says each in the reader's language (central/alerts.py ``evidence_*``): shared speaks no language.
FINDINGS = {
    "altered": "its chain hash does not match its own fields (the record was altered)",
    "late_start": "the chain starts at index {index}: earlier segments are missing",
    "out_of_order": "index {index} follows {previous}: a segment is missing or out of order",
    "unlinked": "it does not link to the segment before it (a segment was replaced or removed)",
    "overlaps": "it starts before the previous segment ended",
    "recording_missing": "its recording is missing",
    "recording_edited": "its recording was edited (SHA-256 differs)",
}


@dataclass(frozen=True)
class Finding:
    """What is wrong with a segment: a code of ``FINDINGS`` and its parameters; ``str()`` is the English."""

    code: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return FINDINGS[self.code].format(**self.params)


@dataclass(frozen=True)
class Problem:
    index: int
    segment_id: str
    what: str
    finding: Finding | None = None


def check_link(segment: EvidenceSegment, previous: EvidenceSegment | None) -> Finding | None:
    """What is wrong with ``segment`` following ``previous`` (None: it is the first), or None if nothing."""
    if segment_chain_hash(segment) != segment.chain_sha256:
        return Finding("altered")
    if previous is None:
        if segment.index != 0 or segment.prev_chain_sha256 is not None:
            return Finding("late_start", {"index": segment.index})
        return None
    if segment.index != previous.index + 1:
        return Finding("out_of_order", {"index": segment.index, "previous": previous.index})
    if segment.prev_chain_sha256 != previous.chain_sha256:
        return Finding("unlinked")
    if segment.started_at < previous.ended_at:
        return Finding("overlaps")
    return None


def verify(segments: Iterable[EvidenceSegment], files: dict[str, Path] | None = None) -> list[Problem]:
    """Check a badge's whole chain in order of arrival; with ``files`` (segment_id -> path), each file's
    bytes against the hash recorded for it. An empty list means the chain is intact."""
    problems: list[Problem] = []
    previous = None
    for segment in segments:
        found = check_link(segment, previous)
        if found:
            problems.append(Problem(segment.index, segment.segment_id, str(found), found))
        if files is not None:
            path = files.get(segment.segment_id)
            if path is None or not Path(path).exists():
                missing = Finding("recording_missing")
                problems.append(Problem(segment.index, segment.segment_id, str(missing), missing))
            elif file_sha256(Path(path)) != segment.sha256:
                edited = Finding("recording_edited")
                problems.append(Problem(segment.index, segment.segment_id, str(edited), edited))
        previous = segment
    return problems
