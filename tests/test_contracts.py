"""The wire contracts: every message kind round-trips, and bad input is refused with a reason."""

import json
from datetime import timedelta

import pytest

from shared import ids, messages, timeutil, topics
from shared.messages import InvalidMessage, decode, encode


def make_event(**overrides):
    fields = dict(
        device="cam-1",
        event_id=ids.new_id(),
        seq=0,
        state="open",
        event_type="loitering",
        severity="medium",
        label="person",
        score=0.8,
        started_at=timeutil.utc_now(),
    )
    fields.update(overrides)
    return messages.Event(**fields)


EVENT_TOPIC = topics.up("pavlodar", "cam-1", "event")


def test_event_round_trips():
    event = make_event(box=messages.Box(x=1, y=2, w=30, h=60), frame_size=(768, 576), track_ids=[3, 4])
    wire = encode(event)
    decoded = decode(EVENT_TOPIC, wire)
    assert encode(decoded) == wire
    assert decoded.box == event.box and decoded.track_ids == [3, 4] and decoded.frame_size == (768, 576)
    assert abs(decoded.started_at - event.started_at) < timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d.update(score="0.8"), "field 'score'"),
        (lambda d: d.update(lable="person"), "unknown field 'lable'"),
        (lambda d: d.pop("label"), "missing field 'label'"),
        (lambda d: d.update(device="cam-2"), "does not match 'cam-1' in the topic"),
        (lambda d: d.update(v=2), "schema version 2 is not supported"),
        (lambda d: d.update(type="status"), "does not match the topic's kind"),
        (lambda d: d.update(ts="2099-01-01T00:00:00Z"), "in the future"),
        (lambda d: d.update(ts="1999-01-01T00:00:00Z"), "before 2020"),
        (lambda d: d.update(ts="2026-01-01T00:00:00"), "no time zone"),
        (lambda d: d.update(event_type="arson"), "event_type"),
        (lambda d: d.update(state="closed"), "a closed event needs ended_at"),
        (lambda d: d.update(id="not-a-ulid"), "field 'id'"),
    ],
)
def test_bad_event_is_refused_with_a_reason(mutate, reason):
    data = json.loads(encode(make_event()))
    mutate(data)
    with pytest.raises(InvalidMessage) as caught:
        decode(EVENT_TOPIC, json.dumps(data).encode())
    assert reason in caught.value.reason


def test_oversize_and_non_json_payloads_are_refused():
    with pytest.raises(InvalidMessage, match="limit is"):
        decode(EVENT_TOPIC, b"{" + b" " * 20_000 + b"}")
    with pytest.raises(InvalidMessage, match="not JSON"):
        decode(EVENT_TOPIC, b"\xff\xfe garbage")
    with pytest.raises(InvalidMessage, match="JSON object"):
        decode(EVENT_TOPIC, b"[1, 2]")
    with pytest.raises(InvalidMessage, match="nested too deeply"):
        decode(EVENT_TOPIC, b"[" * 5000 + b"]" * 5000)


def test_unknown_topics_are_refused():
    for topic in [
        "kuzet/v1/pavlodar/cam-1/up/selfie",
        "kuzet/v2/pavlodar/cam-1/up/event",
        "kuzet/v1/pavlodar/Cam_1/up/event",
        "kuzet/v1/pavlodar/cam-1/sideways/event",
    ]:
        with pytest.raises(InvalidMessage):
            decode(topic, encode(make_event()))


def test_snapshot_data_must_be_base64():
    snapshot = messages.Snapshot(
        device="cam-1",
        event_id=ids.new_id(),
        sha256="0" * 64,
        width=4,
        height=4,
        data=messages.to_base64(b"jpeg"),
    )
    topic = topics.up("pavlodar", "cam-1", "snapshot")
    assert decode(topic, encode(snapshot)).data == snapshot.data
    data = json.loads(encode(snapshot))
    data["data"] = "!!!not base64!!!"
    with pytest.raises(InvalidMessage, match="base64"):
        decode(topic, json.dumps(data).encode())


def test_every_kind_has_a_model_and_a_size_limit():
    for kind in topics.UP_KINDS + topics.DOWN_KINDS:
        assert kind in messages.MODEL_FOR_KIND
        assert messages.MAX_PAYLOAD_BYTES[kind] > 0


def test_ids_sort_by_creation_time():
    first = ids.new_id()
    later = [ids.new_id() for _ in range(50)]
    assert all(first[:10] <= other[:10] for other in later)
    assert len(set(later)) == 50
    assert ids.is_id(first) and not ids.is_id("hello")


def test_declined_dispatch_needs_a_reason():
    with pytest.raises(ValueError, match="needs a reason"):
        messages.DispatchState(device="badge-1", dispatch_id=ids.new_id(), state="declined")


def test_timestamps_on_the_wire_are_utc_with_z():
    moment = timeutil.utc_now()
    text = timeutil.to_wire(moment)
    assert text.endswith("Z")
    assert abs(timeutil.from_wire(text) - moment) < timedelta(milliseconds=1)
