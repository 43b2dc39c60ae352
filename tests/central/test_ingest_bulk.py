"""Ingest's MQTT client (central.ingest.mqtt_client) under a burst, through a real Mosquitto: thousands of
messages queued by the broker while central was down arrive in large reads, their acknowledgements written
together. Every one is stored once, and every one was acknowledged: started again, central is sent nothing
twice."""

from __future__ import annotations

import hashlib
import itertools
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.ingest import event, make_central, new_id, up, wait_for

from kuzet.central.ingest.service import IngestService
from kuzet.shared import messages
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link, topic_matcher

BACKLOG = 3000


def test_a_backlog_arrives_in_bulk_stored_once_and_acknowledged(tmp_path, mosquitto):
    central = make_central(tmp_path, mosquitto.url)
    IngestService(central).start().stop()  # central's persistent session: the broker keeps what comes next
    cameras = Link(MqttSection(url=mosquitto.url), "cameras").start()
    try:
        sent = [event(f"cam-{n % 7}", new_id(), 0) for n in range(BACKLOG)]
        for message in sent:
            last = cameras.publish(up(message.device, "event"), messages.encode(message))
        last.wait_for_publish(30)
    finally:
        cameras.stop()

    first = IngestService(central).start()
    try:
        wait_for(lambda: central.db()["events"].count == BACKLOG, timeout_s=60, what="the whole backlog")
    finally:
        first.stop()
    assert first.counters.received == BACKLOG and first.counters.duplicates == 0
    assert {row["event_id"] for row in central.db()["events"].rows} == {m.event_id for m in sent}

    again = IngestService(central).start()  # anything unacknowledged would be delivered again now
    probe = Link(MqttSection(url=mosquitto.url), "probe").start()
    try:
        marker = event("cam-probe", new_id(), 0)
        probe.publish(up("cam-probe", "event"), messages.encode(marker)).wait_for_publish(5)
        wait_for(
            lambda: central.db()["events"].count_where("event_id = ?", [marker.event_id]), what="the probe"
        )
    finally:
        probe.stop()
        again.stop()
    assert again.counters.received == 1  # the probe only: nothing of the backlog came back


def test_link_topic_matching_agrees_with_paho():
    filters = ["kuzet/v1/+/+/up/#", "a/b", "a/+", "a/#", "#", "+/b", "+", "a/+/c", "$SYS/#", "a/b/#"]
    topics_ = [
        "a",
        "a/b",
        "a/b/c",
        "a/c",
        "b",
        "a/",
        "/b",
        "$SYS/x",
        "kuzet/v1/s/d/up/event",
        "kuzet/v1/s/up",
    ]
    for topic_filter, topic in itertools.product(filters, topics_):
        expected = paho.topic_matches_sub(topic_filter, topic)
        assert topic_matcher(topic_filter)(topic) == expected, (topic_filter, topic)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_publishes_with_mqtt5_properties_and_over_mqtt311(tmp_path, mosquitto, protocol):
    """The client slices PUBLISH packets itself: properties a device adds (MQTT 5) are skipped, not taken for
    the payload, and central speaking MQTT 3.1.1 (no properties at all) reads the same packets right."""
    central = make_central(tmp_path, mosquitto.url, mqtt={"url": mosquitto.url, "protocol": protocol})
    ingest = IngestService(central).start()
    device = Link(MqttSection(url=mosquitto.url), "cam-props").start()
    try:
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("firmware", "2.1" * 40)]
        properties.ContentType = "application/json"
        properties.MessageExpiryInterval = 3600
        sent = [event("cam-props", new_id(), 0, zone=f"zone-{n}") for n in range(50)]
        for message in sent:
            payload = messages.encode(message)
            device.client.publish(up("cam-props", "event"), payload, qos=1, properties=properties)
        wait_for(lambda: central.db()["events"].count == len(sent), what="the events")
        assert ingest.counters.dead_letters == 0
        stored = {row["event_id"]: row["zone"] for row in central.db()["events"].rows}
        assert stored == {m.event_id: m.zone for m in sent}
    finally:
        device.stop()
        ingest.stop()


def test_a_full_queue_holds_the_stream_and_loses_nothing(tmp_path, mosquitto):
    """The writer stalls (a hook that blocks): the queue fills to queue_max, the network thread stops reading
    (the broker keeps the rest), /healthz's view says so; once the writer moves again everything is stored."""
    central = make_central(tmp_path, mosquitto.url, ingest={"queue_max": 100})
    release = threading.Event()
    ingest = IngestService(central)
    ingest.on("event", lambda message, site: release.wait(30))
    ingest.start()
    cameras = Link(MqttSection(url=mosquitto.url), "cameras").start()
    try:
        sent = [event("cam-1", new_id(), 0) for _ in range(400)]
        for message in sent:
            last = cameras.publish(up("cam-1", "event"), messages.encode(message))
        last.wait_for_publish(30)
        health = wait_for(lambda: (h := ingest.health())["queue_depth"] >= 100 and h, what="a full queue")
        assert any("queue is full" in problem for problem in health["problems"])
        assert ingest.counters.received < len(sent)  # the rest waits at the broker
        release.set()
        wait_for(lambda: central.db()["events"].count == len(sent), what="everything stored")
        assert ingest.health()["problems"] == []
    finally:
        release.set()
        cameras.stop()
        ingest.stop()


def test_a_burst_of_snapshots_is_stored_whole_and_only_on_each_senders_own_events(tmp_path, mosquitto):
    """A burst's snapshots arrive in one batch: their bytes go in one by one, their rows together
    (central/ingest/snapshots.py), and still each is checked on its own: one whose bytes do not match its
    SHA-256 and one naming another camera's event are dead-lettered, every other shows on its event."""
    central = make_central(tmp_path, mosquitto.url)
    IngestService(central).start().stop()  # central's persistent session: the broker keeps what comes next
    cameras = Link(MqttSection(url=mosquitto.url), "cameras").start()

    def snapshot(device: str, event_id: str, data: bytes, sha256: str | None = None) -> messages.Snapshot:
        return messages.Snapshot(device=device, event_id=event_id, sha256=sha256 or hashlib.sha256(data).hexdigest(),
                                 width=640, height=360, data=messages.to_base64(data))  # fmt: skip

    try:
        opened = [event(f"cam-{n % 4}", new_id(), 0) for n in range(40)]
        pictures = {m.event_id: f"picture of {m.event_id}".encode() for m in opened}
        burst = [*opened, *(snapshot(m.device, m.event_id, pictures[m.event_id]) for m in opened)]
        burst.append(snapshot(opened[1].device, opened[1].event_id, b"altered", sha256="0" * 64))
        burst.append(snapshot("cam-3", opened[2].event_id, b"cam-2's event, not cam-3's"))
        for message in burst:
            last = cameras.publish(up(message.device, message.type), messages.encode(message))
        last.wait_for_publish(30)
    finally:
        cameras.stop()

    ingest = IngestService(central).start()
    try:
        wait_for(lambda: central.db()["dead_letters"].count == 2, timeout_s=60, what="the two refused")
        wait_for(
            lambda: central.db()["events"].count_where("snapshot_sha256 IS NOT NULL") == 40, what="shown"
        )
    finally:
        ingest.stop()
    shown = {row["event_id"]: row["snapshot_sha256"] for row in central.db()["events"].rows}
    assert shown == {event_id: hashlib.sha256(data).hexdigest() for event_id, data in pictures.items()}
    assert central.db()["media"].count == 40  # neither refused picture was stored
    reasons = sorted(row["reason"] for row in central.db()["dead_letters"].rows)
    assert "sha256 does not match" in reasons[1] and "cam-2's" in reasons[0], reasons
