"""Ingest through a real Mosquitto: valid messages stored, repeats and late messages handled, bad input
dead-lettered while good input keeps flowing, device status and last will."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from support.ingest import SITE, dead_letter_rows, event, new_id, up, wait_for

from kuzet.central.ingest.service import IngestService
from kuzet.shared import messages, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link


@pytest.fixture
def central_options(mosquitto):
    return {"broker_url": mosquitto.url, "storage": {"dead_letter_payload_bytes": 256}}


@pytest.fixture
def ingest(central):
    service = IngestService(central).start()
    yield service
    service.stop()


@pytest.fixture
def device(mosquitto):
    link = Link(MqttSection(url=mosquitto.url), "cam-test-publisher").start()
    yield link
    link.stop()


def send(link: Link, message: messages.Envelope) -> None:
    link.publish(up(message.device, message.type), messages.encode(message))


def db_rows(central, sql: str, *params) -> list[dict]:
    return [dict(row) for row in central.db().query(sql, params)]


def test_event_lifecycle_is_stored_with_its_timeline(central, ingest, device):
    watcher = central.hub.subscribe()
    event_id = new_id()
    send(device, event("cam-1", event_id, 0, "open"))
    send(device, event("cam-1", event_id, 1, "update", zone="yard"))
    send(device, event("cam-1", event_id, 2, "closed", zone="gate"))

    wait_for(lambda: db_rows(central, "SELECT * FROM events WHERE seq = 2"), what="the closed state")
    [row] = db_rows(central, "SELECT * FROM events")
    assert row["event_id"] == event_id
    assert (row["device"], row["site"], row["edge_state"]) == ("cam-1", SITE, "closed")
    assert row["zone"] == "gate"  # the row is the newest state
    assert row["status"] == "new" and row["hold"] == 0
    assert json.loads(row["box"]) == {"x": 10.0, "y": 20.0, "w": 30.0, "h": 62.0}
    assert row["severity_rank"] == messages.SEVERITY_RANK["high"]
    timeline = db_rows(
        central, "SELECT seq, state FROM event_updates WHERE event_id = ? ORDER BY seq", event_id
    )
    assert timeline == [
        {"seq": 0, "state": "open"},
        {"seq": 1, "state": "update"},
        {"seq": 2, "state": "closed"},
    ]

    [camera] = db_rows(central, "SELECT * FROM devices")
    assert camera["device_id"] == "cam-1" and camera["registered_at"] is None and camera["last_seen"]

    announced = []
    while (update := watcher.get(timeout=0.5)) is not None:
        announced.append(update)
    event_updates = [u.data for u in announced if u.channel == "event"]
    assert event_updates and event_updates[-1]["edge_state"] == "closed"
    assert event_updates[-1]["box"]["h"] == 62.0  # JSON columns arrive decoded
    assert any(u.channel == "device" and u.data["device_id"] == "cam-1" for u in announced)
    assert ingest.counters.stored == 3 and ingest.counters.dead_letters == 0


def test_repeated_and_late_messages_change_nothing(central, ingest, device):
    event_id = new_id()
    newest = event("cam-1", event_id, 5, "update", label="newest")
    send(device, newest)
    wait_for(lambda: db_rows(central, "SELECT * FROM events"), what="the first state")
    # An operator acknowledges the event; no edge message may undo that.
    central.db().execute("UPDATE events SET status = 'acknowledged' WHERE event_id = ?", [event_id])
    central.db().conn.commit()

    send(device, newest)  # a device re-sending after a reconnect: same message id
    send(device, event("cam-1", event_id, 3, "update", label="late"))  # an older state arriving late
    marker = event("cam-1", new_id(), 0)
    send(device, marker)
    wait_for(
        lambda: db_rows(central, "SELECT * FROM events WHERE event_id = ?", marker.event_id), what="marker"
    )

    [row] = db_rows(central, "SELECT * FROM events WHERE event_id = ?", event_id)
    assert (row["seq"], row["label"], row["status"]) == (5, "newest", "acknowledged")
    timeline = db_rows(central, "SELECT seq FROM event_updates WHERE event_id = ? ORDER BY seq", event_id)
    assert [r["seq"] for r in timeline] == [3, 5]  # the late state is in the timeline, once each
    assert ingest.counters.duplicates == 1
    assert ingest.counters.timeline_only == 1


def test_a_message_sent_again_after_it_was_stored_is_shown_again(central, ingest, device):
    """The broker sends again what was never acknowledged: the worker that stored it may have died before the
    pages were told of it, so the next one shows the stored event again (and stores nothing twice)."""
    first = event("cam-1", new_id(), 0, label="first")
    send(device, first)
    wait_for(lambda: db_rows(central, "SELECT 1 FROM events"), what="the event")
    with central.hub.subscribe() as watcher:
        send(device, first)  # redelivered
        update = watcher.get(timeout=10)
        while update is not None and update.channel != "event":
            update = watcher.get(timeout=10)
        assert update is not None, "the redelivered event was not shown"
        assert (update.data["event_id"], update.data["label"]) == (first.event_id, "first")
    assert len(db_rows(central, "SELECT 1 FROM event_updates")) == 1
    assert ingest.counters.duplicates == 1


def test_a_worker_that_stops_before_its_live_update_left_leaves_the_message_to_the_next(central, device):
    """With other processes' pages to tell (a relay: the PostgreSQL live bus), the PUBACK waits until the relay
    has passed on what the batch showed: a worker gone in between has not acknowledged the message, so the
    broker sends it to the next worker, which shows it."""
    relayed, held = [], []
    central.hub.relay_to(lambda channel, data: relayed.append(data.get("event_id")), held.append)
    first = IngestService(central).start()
    try:
        sent = event("cam-1", new_id(), 0)
        send(device, sent)
        wait_for(lambda: sent.event_id in relayed, what="the event stored and handed to the relay")
    finally:
        first.stop()  # before the relay passed it on: as if killed
    relayed.clear()
    with central.hub.subscribe() as watcher:
        second = IngestService(central).start()
        try:
            update = watcher.get(timeout=10)
            while update is not None and update.channel != "event":
                update = watcher.get(timeout=10)
            assert update is not None and update.data["event_id"] == sent.event_id
            assert second.counters.duplicates == 1  # sent again by the broker, stored once
            while held:  # the relay passes everything on: the second worker acknowledges it
                held.pop(0)()
        finally:
            second.stop()
    third = IngestService(central).start()
    try:
        marker = event("cam-1", new_id(), 0)
        send(device, marker)
        wait_for(lambda: marker.event_id in relayed, what="the marker")
        assert third.counters.duplicates == 0  # acknowledged by the second: not sent a third time
    finally:
        third.stop()
    assert len(db_rows(central, "SELECT 1 FROM event_updates")) == 2


def test_bad_messages_are_dead_lettered_and_ingest_carries_on(central, ingest, device):
    good = event("cam-1", new_id(), 0)
    wrong_device = event("cam-2", new_id(), 0)
    bad = [
        (up("cam-1", "event"), b"\x00not json" + b"x" * 1000, "not JSON"),
        (up("cam-1", "event"), b"[1, 2]", "must be a JSON object"),
        (up("cam-1", "event"), json.dumps({"v": 9, "type": "event"}).encode(), "schema version 9"),
        (up("cam-1", "status"), messages.encode(good), "does not match the topic's kind"),
        (up("cam-1", "event"), messages.encode(wrong_device), "does not match 'cam-1' in the topic"),
        (up("cam-1", "event"), _without(good, "severity"), "missing field 'severity'"),
        (up("cam-1", "event"), _with(good, score=7), "field 'score'"),
        (up("cam-1", "event"), _with(good, ts="2099-01-01T00:00:00.000Z"), "in the future"),
        ("kuzet/v1/pavlodar/cam-1/up/gossip", b"{}", "unknown up kind 'gossip'"),
        (up("cam-1", "event"), b"[" * 8000 + b"]" * 8000, "nested too deeply"),  # would crash json.loads
    ]
    for topic, payload, _ in bad:
        device.publish(topic, payload)
        send(device, event("cam-1", new_id(), 0))  # good traffic interleaved with the bad
    send(device, good)

    wait_for(lambda: ingest.counters.dead_letters == len(bad), what="every bad message dead-lettered")
    wait_for(
        lambda: db_rows(central, "SELECT 1 FROM events WHERE event_id = ?", good.event_id), what="good one"
    )
    assert central.db()["events"].count == len(bad) + 1

    letters = dead_letter_rows(central)
    assert [letter["topic"] for letter in letters] == [topic for topic, _, _ in bad]
    for letter, (_, payload, reason) in zip(letters, bad, strict=True):
        assert reason in letter["reason"]
        assert letter["payload_size"] == len(payload)
        assert letter["payload"] == payload[:256]  # bounded to [storage] dead_letter_payload_bytes
        assert letter["received_at"]


def test_a_failing_hook_dead_letters_its_message_but_not_the_next(central, ingest, device):
    seen = []

    def route(message, site):
        if message.dispatch_id == poisoned:
            raise RuntimeError("routing bug")
        seen.append((message.dispatch_id, site))

    ingest.on("dispatch_state", route)
    poisoned, fine = new_id(), new_id()
    for dispatch_id in (poisoned, fine):
        send(device, messages.DispatchState(device="badge-1", dispatch_id=dispatch_id, state="acknowledged"))

    wait_for(lambda: seen, what="the second dispatch state")
    assert seen == [(fine, SITE)]
    [letter] = dead_letter_rows(central)
    assert "dispatch_state hook failed" in letter["reason"] and "routing bug" in letter["reason"]
    assert ingest.counters.hook_errors == 1


def test_status_availability_and_last_will(central, ingest, mosquitto):
    will_topic = up("cam-7", "availability")
    offline = messages.encode(messages.Availability(device="cam-7", state="offline"))
    camera = Link(MqttSection(url=mosquitto.url), "cam-7", will=(will_topic, offline)).start()
    camera.publish(
        will_topic, messages.encode(messages.Availability(device="cam-7", state="online")), retain=True
    )
    status = messages.Status(
        device="cam-7", kind="camera", software_version="1.4.2", uptime_s=12.5, fps_in=10
    )
    camera.publish(up("cam-7", "status"), messages.encode(status))

    row = wait_for(lambda: _device(central, "cam-7", status_at=True), what="the heartbeat")
    assert row["online"] == 1 and row["kind"] == "camera" and row["software_version"] == "1.4.2"
    assert json.loads(row["status"])["fps_in"] == 10
    assert row["status_at"] == timeutil.to_wire(status.ts)

    # The camera loses power: its connection drops without a goodbye, and the broker sends its last will.
    camera.client.loop_stop()
    camera.client.socket().shutdown(socket.SHUT_RDWR)
    camera.client.socket().close()
    wait_for(lambda: _device(central, "cam-7", online=0), what="the last will")


def test_messages_sent_while_central_is_down_arrive_after_restart(central, mosquitto, device):
    IngestService(central).start().stop()  # creates central's persistent session on the broker
    event_ids = [new_id() for _ in range(20)]
    for event_id in event_ids:
        send(device, event("cam-1", event_id, 0))
    service = IngestService(central).start()
    try:
        wait_for(lambda: central.db()["events"].count == len(event_ids), what="the queued events")
    finally:
        service.stop()


def test_snapshot_with_a_wrong_hash_is_dead_lettered(central, ingest, device):
    data = b"\xff\xd8 not really the jpeg the hash is of"
    snapshot = messages.Snapshot(
        device="cam-1", event_id=new_id(), sha256="0" * 64, width=4, height=3, data=messages.to_base64(data)
    )
    send(device, snapshot)
    wait_for(lambda: ingest.counters.dead_letters == 1, what="the dead letter")
    [letter] = dead_letter_rows(central)
    assert letter["reason"] == "snapshot sha256 does not match its data"


def _device(central, device_id: str, **expect):
    rows = [dict(r) for r in central.db().query("SELECT * FROM devices WHERE device_id = ?", [device_id])]
    if not rows:
        return None
    row = rows[0]
    for key, value in expect.items():
        if value is True and not row[key]:
            return None
        if value is not True and row[key] != value:
            return None
    return row


def _with(message: messages.Envelope, **changes) -> bytes:
    raw = json.loads(messages.encode(message))
    raw.update(changes)
    return json.dumps(raw).encode()


def _without(message: messages.Envelope, key: str) -> bytes:
    raw = json.loads(messages.encode(message))
    del raw[key]
    return json.dumps(raw).encode()


def test_snapshot_is_stored_by_hash_and_shown_on_its_event(central, ingest, device):
    cv2 = pytest.importorskip("cv2")
    picture = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR))
    data = jpeg.tobytes()
    sha = hashlib.sha256(data).hexdigest()
    opened = event("cam-1", new_id(), 0)
    send(device, opened)
    snapshot = messages.Snapshot(
        device="cam-1",
        event_id=opened.event_id,
        sha256=sha,
        width=64,
        height=48,
        data=messages.to_base64(data),
    )
    send(device, snapshot)
    send(device, snapshot)  # sent twice: stored once

    wait_for(lambda: db_rows(central, "SELECT 1 FROM events WHERE snapshot_sha256 = ?", sha), what="snapshot")
    [media] = db_rows(central, "SELECT * FROM media")
    assert (media["sha256"], media["kind"], media["event_id"], media["size"]) == (
        sha,
        "snapshot",
        opened.event_id,
        len(data),
    )
    assert (central.media_dir / media["path"]).read_bytes() == data
    wait_for(lambda: ingest.counters.stored == 3, what="both snapshot messages handled")
    assert ingest.counters.dead_letters == 0


def test_clip_chunks_in_any_order_become_one_verified_file(central, ingest, device):
    clip = os.urandom(messages.CLIP_CHUNK_BYTES + 1000)
    sha = hashlib.sha256(clip).hexdigest()
    clip_id = new_id()
    opened = event("cam-1", new_id(), 0, clip_id=clip_id)
    send(device, opened)
    parts = [clip[: messages.CLIP_CHUNK_BYTES], clip[messages.CLIP_CHUNK_BYTES :]]
    chunks = [
        messages.ClipChunk(
            device="cam-1",
            clip_id=clip_id,
            event_id=opened.event_id,
            index=index,
            count=len(parts),
            size=len(clip),
            sha256=sha,
            chunk_sha256=hashlib.sha256(part).hexdigest(),
            content_type="video/mp4",
            data=messages.to_base64(part),
        )
        for index, part in enumerate(parts)
    ]
    for chunk in (chunks[1], chunks[1], chunks[0]):
        send(device, chunk)

    wait_for(
        lambda: db_rows(central, "SELECT 1 FROM clips WHERE state = 'verified'"), what="the verified clip"
    )
    [media] = db_rows(central, "SELECT * FROM media WHERE kind = 'clip'")
    assert media["sha256"] == sha and media["event_id"] == opened.event_id
    assert (central.media_dir / media["path"]).read_bytes() == clip
    [row] = db_rows(central, "SELECT clip_id FROM events WHERE event_id = ?", opened.event_id)
    assert row["clip_id"] == clip_id
    assert ingest.counters.dead_letters == 0


def test_live_frames_go_to_the_hub_not_the_database(central, ingest, device):
    watcher = central.hub.subscribe()
    frame = messages.LiveFrame(
        device="cam-1", stream_id=new_id(), seq=4, width=64, height=48, data=messages.to_base64(b"jpeg bytes")
    )
    send(device, frame)
    update = wait_for(lambda: _next(watcher, "live"), what="the live frame on the hub")
    assert (update["device"], update["site"], update["seq"], update["data"]) == ("cam-1", SITE, 4, frame.data)
    assert central.db()["events"].count == 0


def _arrived(received: list, within_s: float) -> bool:
    try:
        wait_for(lambda: received, timeout_s=within_s)
    except AssertionError:
        return False
    return True


def _next(watcher, channel: str):
    while (update := watcher.get(timeout=0.05)) is not None:
        if update.channel == channel:
            return update.data
    return None


def test_a_message_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_stored(
    central, ingest, device
):
    # Stands in for any storage failure of one row (a constraint, a full disk for one page, a bug).
    with central.db().conn as conn:
        conn.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.label = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    good = [event("cam-1", new_id(), 0) for _ in range(20)]
    poison = event("cam-1", new_id(), 0, label="poison")
    for message in good[:10] + [poison] + good[10:]:
        send(device, message)

    wait_for(lambda: central.db()["events"].count == len(good), what="every good event")
    wait_for(lambda: ingest.counters.dead_letters == 1, what="the refused one dead-lettered")
    [letter] = dead_letter_rows(central)
    assert "could not store" in letter["reason"] and "disk says no" in letter["reason"]
    assert letter["payload"] == messages.encode(poison)[:256]


def test_central_publish_reaches_the_device(central, ingest, mosquitto):
    received = []
    badge = Link(MqttSection(url=mosquitto.url), "badge-9")
    badge.subscribe(topics.device_down(SITE, "badge-9"), lambda topic, payload: received.append(payload))
    badge.start()
    try:
        topic = topics.down(SITE, "badge-9", "command")
        sent = []
        # Until the badge's subscription is in place, a command has nobody to go to: send until one arrives.
        for _ in range(50):
            sent.append(messages.Command(device="badge-9", command_id=new_id(), name="snapshot"))
            central.publish(topic, messages.encode(sent[-1]))
            if _arrived(received, 0.2):
                break
        assert messages.decode(topic, received[0]).command_id in {c.command_id for c in sent}
    finally:
        badge.stop()


def test_hooks_see_messages_of_every_kind_in_arrival_order(central, ingest, device):
    seen = []
    for kind in ("event", "location", "dispatch_state"):
        ingest.on(kind, lambda message, site: seen.append(message.id))
    sent = []
    for _ in range(30):
        sent.append(
            messages.Location(
                device="badge-1", position={"lat": 52.28, "lon": 76.96}, fix="gps", duty="available"
            )
        )
        sent.append(event("badge-1", new_id(), 0))
        sent.append(messages.DispatchState(device="badge-1", dispatch_id=new_id(), state="en_route"))
    for message in sent:
        send(device, message)

    wait_for(lambda: len(seen) == len(sent), what="every message at the hooks")
    # One MQTT session keeps a device's messages in order; ingest keeps that order across kinds and batches.
    assert seen == [m.id for m in sent]


def test_an_evidence_record_with_integers_beyond_64_bits_is_dead_lettered(central, ingest, device):
    """Issue 17 item 14: such a record passed validation, then failed in the store and was neither stored nor
    dead-lettered. Now the contract refuses it and ingest keeps it as a dead letter, naming the field."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    topic, body = re.search(r"Topic: `([^`]*/up/evidence)`\s+```json\n(.*?)\n```", doc, re.S).groups()
    huge = json.loads(body)
    huge["index"], huge["size"] = 2**64, 2**64
    device.publish(topic, json.dumps(huge).encode())
    send(device, event("cam-1", new_id(), 0))  # the good message after it is stored

    wait_for(lambda: ingest.counters.dead_letters == 1, what="the evidence record dead-lettered")
    [letter] = dead_letter_rows(central)
    assert letter["topic"] == topic and "index" in letter["reason"]
    wait_for(lambda: central.db()["events"].count == 1, what="the good event after it")
    assert central.db()["evidence_segments"].count == 0


def test_heartbeats_that_change_nothing_shown_are_not_announced_but_a_problem_is(central, ingest, device):
    """Every device's heartbeat every 10 s is 1,000 a second in a city: the page hears of one when what it
    shows changes (a problem here), otherwise at most every 30 s per device (central/ingest/announce.py)."""
    watcher = central.hub.subscribe()
    # Four heartbeats 5 s apart within one 30 s window of the device's clock (its first one is a minute ago).
    window = timeutil.utc_now().replace(microsecond=0) - timedelta(seconds=60)
    window -= timedelta(seconds=window.second % 30)
    beats = [
        messages.Status(
            device="cam-1",
            kind="camera",
            software_version="1.4.2",
            uptime_s=s,
            cpu_temp_c=t,
            ts=window + timedelta(seconds=s),
        )  # fmt: skip
        for s, t in ((1.0, 50.0), (6.0, 51.0), (11.0, 52.0), (16.0, 88.0))
    ]
    for sent in (beats[:1], beats[1:]):
        for status in sent:
            send(device, status)
        wait_for(lambda: _device(central, "cam-1", status_at=timeutil.to_wire(sent[-1].ts)), what="stored")  # noqa: B023
    shown = []
    while (update := watcher.get(timeout=1.0)) is not None:
        if update.channel == "device":
            shown.append(json.loads(update.data["status"])["cpu_temp_c"])
    assert shown == [50.0, 88.0]  # the first, and the one that is too hot; every heartbeat is stored


def test_events_are_stored_while_a_snapshot_waits_on_the_media_store(central, ingest, device, monkeypatch):
    """Media have a thread of their own: an event that arrives behind a snapshot whose upload is slow is stored
    (and acknowledged) without waiting for it; the snapshot is acknowledged only once it is stored."""
    from kuzet.central.store.media import MediaStore

    release = threading.Event()
    put_bytes = MediaStore.put_bytes
    monkeypatch.setattr(
        MediaStore, "put_bytes", lambda self, *args: release.wait(30) and put_bytes(self, *args)
    )
    acknowledged: list[str] = []
    acknowledge = ingest.acknowledge
    monkeypatch.setattr(
        ingest, "acknowledge", lambda batch: acknowledged.extend(i.topic for i in batch) or acknowledge(batch)
    )
    first, second = event("cam-1", new_id(), 0), event("cam-1", new_id(), 0)
    data = b"\xff\xd8 a picture \xff\xd9"
    sha = hashlib.sha256(data).hexdigest()
    snapshot = messages.Snapshot(
        device="cam-1", event_id=first.event_id, sha256=sha, width=4, height=3, data=messages.to_base64(data)
    )
    send(device, first)
    wait_for(
        lambda: db_rows(central, "SELECT 1 FROM events WHERE event_id = ?", first.event_id), what="first"
    )
    send(device, snapshot)
    send(device, second)

    wait_for(
        lambda: db_rows(central, "SELECT 1 FROM events WHERE event_id = ?", second.event_id), what="second"
    )
    assert db_rows(central, "SELECT snapshot_sha256 FROM events WHERE event_id = ?", first.event_id) == [
        {"snapshot_sha256": None}
    ]
    wait_for(lambda: acknowledged.count(up("cam-1", "event")) == 2, what="both events acknowledged")
    assert up("cam-1", "snapshot") not in acknowledged
    release.set()
    wait_for(lambda: db_rows(central, "SELECT 1 FROM events WHERE snapshot_sha256 = ?", sha), what="snapshot")
    wait_for(lambda: up("cam-1", "snapshot") in acknowledged, what="the snapshot acknowledged once stored")


def test_ingest_whose_media_thread_ended_says_so_in_its_health(ingest):
    media_problem = "the ingest media thread is not running: no snapshot or clip is being stored"
    assert media_problem not in ingest.health()["problems"]
    ingest.media.stop()  # as if it had died: nothing stores snapshots or clips any more
    assert media_problem in ingest.health()["problems"]
