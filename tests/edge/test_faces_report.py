"""A watchlist match on the wire: what the camera builds passes the contract, and a malformed one is refused."""

from __future__ import annotations

import numpy as np
import pytest

from kuzet.edge.faces.report import match_messages
from kuzet.edge.faces.watch import FaceMatch
from kuzet.edge.vision.types import Frame
from kuzet.shared import ids, messages, timeutil, topics


def a_match(distance=0.4, threshold=0.58) -> FaceMatch:
    scene = np.full((144, 176, 3), 90, np.uint8)
    return FaceMatch(
        track_id=7,
        entry_id=ids.new_id(),
        distance=distance,
        threshold=threshold,
        face_box=(50.0, 40.0, 50.0, 50.0),
        track_box=(20.0, 10.0, 150.0, 130.0),
        face_image=scene[30:100, 40:110].copy(),
        frame=Frame(scene, 3, 0.1),
    )


def on_wire(message: messages.Envelope, kind: str) -> messages.Envelope:
    return messages.decode(topics.up("pavlodar", "cam-1", kind), messages.encode(message))


def test_a_match_is_an_open_and_closed_event_with_scene_and_face():
    match = a_match()
    events, snaps = match_messages("cam-1", match, timeutil.utc_now(), None, 85)
    opened, closed = (on_wire(e, "event") for e in events)
    scene, face = (on_wire(s, "snapshot") for s in snaps)
    assert (opened.state, closed.state) == ("open", "closed") and opened.event_id == closed.event_id
    assert opened.attributes["entry_id"] == match.entry_id
    assert opened.snapshot_sha256 == scene.sha256 and opened.attributes["face_sha256"] == face.sha256
    assert (scene.width, face.width) == (176, 70) and opened.track_ids == [7]


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"distance": 0.7}, "within 'threshold'"),
        ({"entry_id": "not an id"}, "'entry_id' is not an id"),
        ({"face_sha256": "00"}, "sha256"),
        ({"name": "someone"}, "exactly"),
    ],
)
def test_a_malformed_match_is_refused_with_the_reason(change, complaint):
    events, _ = match_messages("cam-1", a_match(), timeutil.utc_now(), None, 85)
    raw = events[0].model_dump(mode="json")
    raw["attributes"] = {**raw["attributes"], **change}
    payload = messages.json.dumps(raw).encode()
    with pytest.raises(messages.InvalidMessage, match=complaint):
        messages.decode(topics.up("pavlodar", "cam-1", "event"), payload)
