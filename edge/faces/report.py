"""A watchlist match as the messages the camera sends: a ``watchlist_match`` event (opened and closed at once:
a match is a moment, central keeps it open as a possible match until a person decides), the scene snapshot and
the face crop as a second snapshot of the same event. The contract is ``WATCHLIST_MATCH`` in shared/messages."""

from __future__ import annotations

import hashlib
from datetime import datetime

from kuzet.edge.evidence.snapshot import encode_jpeg, snapshot
from kuzet.edge.faces.watch import FaceMatch
from kuzet.shared import ids, messages
from kuzet.shared.messages import Box, Event, GeoPoint, Snapshot

LABEL = "face"


def _snapshot(device: str, event_id: str, data: bytes, width: int, height: int) -> Snapshot:
    return Snapshot(
        device=device,
        event_id=event_id,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        data=messages.to_base64(data),
    )


def match_messages(
    device: str, match: FaceMatch, now: datetime, location: GeoPoint | None, quality: int
) -> tuple[list[Event], list[Snapshot]]:
    """([open event, closed event], [scene snapshot, face snapshot]) for one match."""
    event_id = ids.new_id()
    image = match.frame.image
    scene, width, height = snapshot(image, [(match.track_box, LABEL), (match.face_box, "")], now, quality)
    scene_snap = _snapshot(device, event_id, scene, width, height)
    face, fw, fh = encode_jpeg(match.face_image, quality)
    face_snap = _snapshot(device, event_id, face, fw, fh)
    x, y, w, h = match.face_box
    opened = Event(
        device=device,
        event_id=event_id,
        seq=0,
        state="open",
        event_type="watchlist_match",
        severity="high",
        label=LABEL,
        score=max(0.0, min(1.0, 1.0 - match.distance)),
        started_at=now,
        track_ids=[match.track_id],
        box=Box(x=x, y=y, w=w, h=h),
        frame_size=(image.shape[1], image.shape[0]),
        location=location,
        snapshot_sha256=scene_snap.sha256,
        attributes={
            "entry_id": match.entry_id,
            "distance": round(match.distance, 4),
            "threshold": match.threshold,
            "face_sha256": face_snap.sha256,
        },
    )
    closed = opened.model_copy(update={"id": ids.new_id(), "seq": 1, "state": "closed", "ended_at": now})
    return [opened, closed], [scene_snap, face_snap]
