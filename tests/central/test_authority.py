"""Who may say what (central.ingest.authority), over a real Mosquitto: only registered devices count, and
each message kind is taken only from the kinds of device that send it. Refused messages are dead-lettered
with the reason and counted; they are never stored nor handed to routing."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from support.chain import next_segment
from support.ingest import SITE, dead_letter_rows, event, make_central, new_id, up, wait_for

from kuzet.central.ingest import authority
from kuzet.central.service import start_parts
from kuzet.central.store import registry
from kuzet.shared import messages
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link


@pytest.fixture
def site(tmp_path, mosquitto):
    """Central as a provisioned site runs it (accept_unregistered off), with cam-1 and badge-1 registered, and
    an MQTT link to publish as any device."""
    central = make_central(tmp_path, mosquitto.url, ingest={"accept_unregistered": False})
    for device, kind in (("cam-1", "camera"), ("badge-1", "badge")):
        registration = registry.Registration(device_id=device, kind=kind, site=SITE)
        registry.register(central.db(), registration, actor="tech")
    with contextlib.ExitStack() as running:
        parts = start_parts(central, running, web=False)
        link = Link(MqttSection(url=mosquitto.url), "devices").start()
        running.callback(link.stop)

        def send(message) -> None:
            link.publish(up(message.device, message.type), messages.encode(message)).wait_for_publish(5)

        yield central, parts, send
    central.close()


def _letters(central, count: int) -> list[tuple[str, str]]:
    wait_for(lambda: len(dead_letter_rows(central)) >= count, what=f"{count} dead letters")
    return [(row["topic"], row["reason"]) for row in dead_letter_rows(central)]


def _location(device: str) -> messages.Location:
    return messages.Location(
        device=device, position={"lat": 52.2873, "lon": 76.9674}, fix="gps", duty="available"
    )


def _evidence(device: str) -> messages.EvidenceSegment:
    return next_segment(device, None, b"video")


def test_a_camera_cannot_become_a_patrol_unit(site):
    central, parts, send = site
    send(_location("cam-1"))
    send(messages.Status(device="cam-1", kind="badge", software_version="1.0", uptime_s=5))
    send(_evidence("cam-1"))
    letters = _letters(central, 3)
    assert letters == [
        (up("cam-1", "location"), "a camera may not send location (only a badge may)"),
        (up("cam-1", "status"), "a camera may not send status (only a badge may)"),
        (up("cam-1", "evidence"), "a camera may not send evidence (only a badge may)"),
    ]
    assert parts.ingest.counters.dead_letters_by_cause["unauthorised"] == 3
    parts.routing.drain()
    assert parts.routing.units.get("cam-1") is None
    assert central.db()["units"].count == 0
    assert central.db()["evidence_segments"].count == 0
    assert central.db()["devices"].get("cam-1")["kind"] == "camera"  # its heartbeat did not change it

    # A patrol-worthy event waits for a unit: the camera is never sent it.
    send(event("cam-1", new_id(), 0, severity="critical"))
    wait_for(lambda: central.db()["events"].count == 1, what="the camera's own event stored")
    parts.routing.drain()
    assert central.db()["dispatches"].count == 0

    # The badge's own location makes it a unit.
    send(_location("badge-1"))
    wait_for(lambda: parts.routing.units.get("badge-1") is not None, what="the badge a unit")


def test_an_unregistered_device_and_a_program_identity_are_refused(site):
    central, parts, send = site
    ghost = event("cam-ghost", new_id(), 0)
    send(ghost)
    send(event("provision-tool", new_id(), 0, event_type="panic", severity="critical"))
    letters = _letters(central, 2)
    assert letters[0] == (up("cam-ghost", "event"), authority.UNREGISTERED)
    assert letters[1][0] == up("provision-tool", "event")
    assert "program's identity" in letters[1][1]
    assert central.db()["events"].count == 0
    assert central.db()["devices"].count == 2  # neither was listed
    assert dead_letter_rows(central)[0]["payload"] == messages.encode(ghost)


def test_a_badge_snapshot_and_a_camera_panic_are_refused(site):
    central, parts, send = site
    camera_event = event("cam-1", new_id(), 0)
    send(camera_event)
    wait_for(lambda: central.db()["events"].count == 1, what="the camera's event")
    jpeg = b"\xff\xd8 not really a jpeg \xff\xd9"
    send(
        messages.Snapshot(
            device="badge-1",
            event_id=camera_event.event_id,
            sha256=hashlib.sha256(jpeg).hexdigest(),
            width=10,
            height=10,
            data=messages.to_base64(jpeg),
        )
    )
    send(event("cam-1", new_id(), 0, event_type="panic", severity="critical"))
    send(event("badge-1", new_id(), 0))  # a badge raises panics, never detections
    letters = _letters(central, 3)
    assert letters == [
        (up("badge-1", "snapshot"), "a badge may not send snapshot (only a camera may)"),
        (up("cam-1", "event"), "a camera may not send panic event (only a badge may)"),
        (up("badge-1", "event"), "a badge may not send loitering event (only a camera may)"),
    ]
    assert central.db()["media"].count == 0
    assert central.db()["events"].get(camera_event.event_id)["snapshot_sha256"] is None
    assert central.db()["events"].count == 1


def test_accept_unregistered_takes_new_devices_but_never_a_program_identity(tmp_path, mosquitto):
    central = make_central(tmp_path, mosquitto.url)  # the tests' default: accept_unregistered on
    with contextlib.ExitStack() as running:
        parts = start_parts(central, running, web=False)
        link = Link(MqttSection(url=mosquitto.url), "devices").start()
        running.callback(link.stop)
        for message in (
            event("cam-new", new_id(), 0),
            event("provision-tool", new_id(), 0, event_type="panic", severity="critical"),
        ):
            link.publish(up(message.device, "event"), messages.encode(message)).wait_for_publish(5)
        wait_for(lambda: dead_letter_rows(central) and central.db()["events"].count, what="both")
        assert central.db()["devices"].get("cam-new")["registered_at"] is None  # listed as unregistered
        assert [row["topic"] for row in dead_letter_rows(central)] == [up("provision-tool", "event")]
        assert parts.ingest.counters.dead_letters_by_cause["unauthorised"] == 1
    central.close()


def _clip(device: str, event_id: str, data: bytes, purpose: str = "event") -> messages.ClipChunk:
    sha = hashlib.sha256(data).hexdigest()
    return messages.ClipChunk(
        device=device,
        clip_id=new_id(),
        purpose=purpose,
        event_id=event_id,
        index=0,
        count=1,
        size=len(data),
        sha256=sha,
        chunk_sha256=sha,
        content_type="video/mp4",
        data=messages.to_base64(data),
    )


def _snapshot(device: str, event_id: str, jpeg: bytes) -> messages.Snapshot:
    sha = hashlib.sha256(jpeg).hexdigest()
    return messages.Snapshot(
        device=device, event_id=event_id, sha256=sha, width=10, height=10, data=messages.to_base64(jpeg)
    )


def test_media_attach_only_to_the_senders_own_event(site):
    central, parts, send = site
    registration = registry.Registration(device_id="cam-2", kind="camera", site=SITE)
    registry.register(central.db(), registration, actor="tech")
    original = event("cam-1", new_id(), 0)
    event_id = original.event_id
    send(original)
    send(_snapshot("cam-1", event_id, b"\xff\xd8 the real snapshot \xff\xd9"))
    real_clip = _clip("cam-1", event_id, b"the real clip")
    send(real_clip)
    rows = central.db()["events"].rows_where
    wait_for(
        lambda: list(
            rows("event_id = ? AND snapshot_sha256 IS NOT NULL AND clip_id IS NOT NULL", [event_id])
        ),
        what="the camera's own snapshot and clip",
    )
    before = central.db()["events"].get(event_id)

    # A badge learns the event id from its dispatch; another camera could guess or overhear it.
    send(_snapshot("badge-1", event_id, b"\xff\xd8 a badge's picture \xff\xd9"))
    send(_clip("badge-1", event_id, b"a badge's recording", purpose="evidence"))
    send(_snapshot("cam-2", event_id, b"\xff\xd8 another camera's picture \xff\xd9"))
    send(_clip("cam-2", event_id, b"another camera's clip"))
    send(event("cam-2", event_id, 5, label="nothing here"))  # a newer seq of the same event id
    letters = dict(_letters(central, 5))  # events are refused in their batch, media after it: any order
    assert sorted(letters) == sorted(
        [
            up("badge-1", "snapshot"),
            up("badge-1", "clip"),
            up("cam-2", "snapshot"),
            up("cam-2", "clip"),
            up("cam-2", "event"),
        ]
    )
    for device, kind in (("badge-1", "clip"), ("cam-2", "snapshot"), ("cam-2", "clip"), ("cam-2", "event")):
        assert (
            letters[up(device, kind)]
            == f"event {event_id} is cam-1's: a {kind} from {device} may not change it"
        )
    after = central.db()["events"].get(event_id)
    assert after == before  # snapshot, clip, device, label: all the camera's
    media = central.db()["media"].rows_where(order_by="created_at")
    assert {row["device"] for row in media} == {"cam-1"}
    assert parts.ingest.counters.dead_letters_by_cause["unauthorised"] == 5
