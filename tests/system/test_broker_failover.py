"""Issue 15, item 4: a site's primary and standby Mosquittos (separate, not bridged). The primary is killed
with SIGKILL while a device sends QoS 1 events through its durable outbox: the device moves to the standby,
central (subscribed on both) stores every event the device sent, none twice; a dispatch to a badge that has
moved to the standby reaches it, and the badge goes back to the primary once it is up again."""

from __future__ import annotations

import time

import pytest
from support.ingest import SITE, make_central, wait_for
from support.patrol import Camera, Centre, inbox_has, point, start_badge
from support.producer import Producer, stored_ids

from kuzet.central.ingest.service import IngestService
from kuzet.edge.delivery import DeliverySettings
from kuzet.edge.runtime import DeviceRuntime
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Status

DEVICE = "cam-failover"
RATE = 300  # events a second


def camera_runtime(tmp_path, brokers: list[str]) -> DeviceRuntime:
    return DeviceRuntime(
        kind="camera",
        site=SITE,
        device=DEVICE,
        mqtt=MqttSection(brokers=brokers, keepalive_s=5, failover_after_s=2, return_to_primary_s=0),
        storage=tmp_path / "device",
        spool_dir=tmp_path / "device" / "clips",
        spool_limits={},
        status=lambda: Status(device=DEVICE, kind="camera", software_version="0", uptime_s=0),
        heartbeat_s=lambda: 30.0,
        delivery=DeliverySettings(max_inflight=200, backlog_per_s=5000, max_bytes_per_s=10_000_000),
    ).start()


@pytest.mark.slow
def test_a_killed_primary_loses_nothing_the_device_sent(tmp_path, mosquitto_factory):
    primary, standby = mosquitto_factory(), mosquitto_factory()
    brokers = [primary.url, standby.url]
    central = make_central(tmp_path, brokers, ingest={"client_id": "central-failover-test"})
    ingest = IngestService(central).start()
    assert ingest.subscribed.is_set(), "central is subscribed on both brokers"
    runtime = camera_runtime(tmp_path, brokers)
    producer = Producer(runtime, RATE).start()
    try:
        wait_for(lambda: len(stored_ids(central)) > 500, 20, "central storing the device's events")
        assert runtime.link.url == primary.url
        primary.process.kill()
        primary.process.wait()
        wait_for(
            lambda: runtime.connected and runtime.link.url == standby.url, 20, "the device on the standby"
        )
        time.sleep(2)
        producer.stop()
        wait_for(lambda: runtime.connected and runtime.outbox.depth() == 0, 60, "the outbox drained")
        sent = set(producer.ids)
        try:
            wait_for(lambda: sent <= set(stored_ids(central)), 60, "every event stored")
        finally:
            stored = stored_ids(central)
            missing = sent - set(stored)
            assert not missing, f"{len(missing)} of {len(sent)} events sent never stored"
        assert len(stored) == len(set(stored)) == len(sent), "an event stored twice"
        # What the primary had acknowledged just before it died was sent again to the standby; central kept
        # each message once.
        assert runtime.publisher.stats["redelivered"] > 0
        assert ingest.counters.duplicates > 0
        assert runtime.link.choice.moves == 1
        health = ingest.health()
        assert f"not connected to the MQTT broker at {primary.url}" in health["problems"]
        assert [b["connected"] for b in health["mqtt"]["brokers"]] == [False, True]
    finally:
        producer.stop()
        runtime.stop(drain_s=0)
        ingest.stop()
        central.close()


@pytest.mark.slow
def test_a_dispatch_reaches_a_badge_on_the_standby_and_the_badge_returns_to_the_primary(
    tmp_path, mosquitto_factory
):
    primary, standby = mosquitto_factory(), mosquitto_factory()
    brokers = [primary.url, standby.url]
    centre = Centre(tmp_path, brokers)
    badge = start_badge(
        tmp_path,
        brokers,
        "badge-1",
        point(100),
        centre,
        mqtt={"failover_after_s": 1, "return_to_primary_s": 2},
        # Back on the primary, the badge may say "online" before central has subscribed there again: central
        # routes by the broker it last heard the badge on, so its next heartbeat is what tells it.
        badge={"status_interval_s": 2},
    )
    camera = Camera(standby.url)
    try:
        assert badge.runtime.link.url == primary.url
        primary.process.kill()
        primary.process.wait()
        wait_for(
            lambda: badge.runtime.link.url == standby.url and badge.runtime.connected, 20, "on the standby"
        )
        # Central hears the badge on the standby (its "online" and status) before it routes the event there.
        wait_for(lambda: centre.ingest._links._last_heard.get("badge-1") == 1, 10, "central heard it there")
        first = camera.event(point(0))
        [item] = wait_for(inbox_has(badge), what="the dispatch through the standby")
        assert item.dispatch.event_id == first

        primary.start()  # the same port, the same persistence folder
        wait_for(
            lambda: badge.runtime.link.url == primary.url and badge.runtime.connected, 30, "back on primary"
        )
        wait_for(lambda: centre.ingest.subscribed.is_set(), 10, "central subscribed on both again")
        wait_for(lambda: centre.ingest._links._last_heard.get("badge-1") == 0, 10, "central heard it there")
        badge.acknowledge()
        badge.resolve("Nobody there.")
        wait_for(lambda: centre.dispatches(state="resolved"), what="resolved at central, through the primary")
    finally:
        camera.stop()
        badge.stop()
        centre.stop()
