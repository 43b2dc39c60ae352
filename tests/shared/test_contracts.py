"""The wire contracts: every message kind round-trips, and bad input is refused with a reason."""

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kuzet.shared import ids, messages, timeutil, topics
from kuzet.shared.messages import InvalidMessage, decode, encode


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
        (lambda d: d.pop("id"), "missing field 'id'"),
        (lambda d: d.pop("ts"), "missing field 'ts'"),
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


DOC_EXAMPLE = re.compile(r"Topic: `([^`]+)`\s+```json\n(.*?)\n```", re.S)
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def time_fields() -> list[tuple[str, str, dict]]:
    """(topic, field, valid example) for every time field of every message kind, from docs/protocol.md."""
    found = []
    for topic, body in DOC_EXAMPLE.findall(DOC.read_text()):
        model = messages.MODEL_FOR_KIND[topics.parse(topic).kind]
        for name, info in model.model_fields.items():
            if "datetime" in str(info.annotation):
                found.append((topic, name, json.loads(body)))
    return found


def test_every_kind_has_its_time_fields_checked():
    checked = {(topics.parse(topic).kind, name) for topic, name, _ in time_fields()}
    # The envelope's ts on every kind, and the payload's own times: a payload time is no less stored than ts.
    assert {("event", "started_at"), ("event", "ended_at"), ("evidence", "started_at")} <= checked
    assert {("evidence", "ended_at"), ("clip_request", "ts"), ("status", "ts")} <= checked


@pytest.mark.parametrize(
    "value, reason",
    [
        ("1971-01-01T00:00:00Z", "is before 2020"),
        ("2099-01-01T00:00:00Z", "is in the future"),
        ("2026-11-20T18:42:07.412", "has no time zone"),
    ],
)
def test_every_time_field_refuses_absurd_and_naive_times(value, reason):
    for topic, name, example in time_fields():
        example[name] = value
        with pytest.raises(InvalidMessage) as caught:
            decode(topic, json.dumps(example).encode())
        assert f"field '{name}'" in caught.value.reason and reason in caught.value.reason, (topic, name)


def test_times_with_an_offset_are_accepted_and_sent_as_utc():
    event = make_event(started_at=datetime.fromisoformat("2026-11-20T23:40:55+05:00"))
    assert json.loads(encode(event))["started_at"] == "2026-11-20T18:40:55.000Z"
