"""Badge evidence segments as a badge chains them, for the tests that feed central a chain by hand."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from kuzet.shared import evidence, ids, messages, timeutil


def next_segment(
    device: str,
    previous: messages.EvidenceSegment | None,
    recording: bytes,
    *,
    started: datetime | None = None,
    seconds: float = 1.0,
    skip: int = 0,
    dispatch_id: str | None = None,
    content_type: str = "video/x-matroska",
) -> messages.EvidenceSegment:
    """The segment after ``previous`` (the first of a chain when None), holding ``recording``: back to back
    with it unless ``started`` says otherwise; ``skip``: as if that many had been recorded and never sent."""
    index = (0 if previous is None else previous.index + 1) + skip
    if started is None:
        started = (
            previous.ended_at
            if previous
            else timeutil.utc_now().replace(microsecond=0) - timedelta(minutes=5)
        )
    ended = started + timedelta(seconds=seconds)
    sha256 = hashlib.sha256(recording).hexdigest()
    previous_chain = previous.chain_sha256 if previous else None
    return messages.EvidenceSegment(
        device=device,
        segment_id=ids.new_id(),
        index=index,
        started_at=started,
        ended_at=ended,
        size=len(recording),
        sha256=sha256,
        prev_chain_sha256=previous_chain,
        chain_sha256=evidence.chain_hash(
            previous_chain, sha256, index, timeutil.to_wire(started), timeutil.to_wire(ended)
        ),
        content_type=content_type,
        dispatch_id=dispatch_id,
    )
