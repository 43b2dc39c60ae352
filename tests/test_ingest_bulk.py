"""Ingest's MQTT client (central.ingest.mqtt_client) under a burst, through a real Mosquitto: thousands of
messages queued by the broker while central was down arrive in large reads, their acknowledgements written
together. Every one is stored once, and every one was acknowledged: started again, central is sent nothing
twice."""

from __future__ import annotations

from central.ingest.service import IngestService
from shared import messages
from shared.config import MqttSection
from shared.mqtt import Link
from tests.ingest_helpers import event, make_central, new_id, up, wait_for

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
    import itertools

    import paho.mqtt.client as paho

    from shared.mqtt import topic_matcher

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
