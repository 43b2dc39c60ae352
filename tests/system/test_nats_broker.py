"""Issue 15, item 4: Kuzet on a second MQTT implementation, NATS's MQTT listener (nats-server 2.9, JetStream
on). It speaks MQTT 3.1.1 only, so devices and central are configured with ``protocol = "3.1.1"``; the basic
path works on it: a device's QoS 1 events through its outbox stored once each, a dispatch down to a badge and
its answers back. Where NATS lacks something Kuzet needs, Kuzet says so plainly (docs/brokers.md)."""

from __future__ import annotations

import logging

import pytest
from support.ingest import SITE, make_central, wait_for
from support.patrol import Camera, Centre, inbox_has, point, start_badge
from support.producer import Producer, stored_ids

from kuzet.central import config as central_config
from kuzet.central.ingest.service import IngestService
from kuzet.edge.runtime import DeviceRuntime
from kuzet.shared.config import ConfigError, MqttSection, parse
from kuzet.shared.messages import Status
from kuzet.shared.mqtt import Link

DEVICE = "cam-nats"


def test_events_through_nats_are_stored_once_each(tmp_path, nats):
    central = make_central(tmp_path, mqtt={"brokers": [nats.url], "protocol": "3.1.1"})
    ingest = IngestService(central).start()
    assert ingest.subscribed.is_set()
    runtime = DeviceRuntime(
        kind="camera",
        site=SITE,
        device=DEVICE,
        mqtt=MqttSection(brokers=[nats.url], protocol="3.1.1", keepalive_s=5),
        storage=tmp_path / "device",
        spool_dir=tmp_path / "device" / "clips",
        spool_limits={},
        status=lambda: Status(device=DEVICE, kind="camera", software_version="0", uptime_s=0),
        heartbeat_s=lambda: 30.0,
    ).start()
    producer = Producer(runtime, rate=200).start()
    try:
        wait_for(lambda: len(producer.ids) >= 400, 10, "the device sending")
        producer.stop()
        wait_for(lambda: runtime.outbox.depth() == 0, 30, "the outbox drained")
        sent = set(producer.ids)
        wait_for(lambda: sent <= set(stored_ids(central)), 30, "every event stored")
        stored = stored_ids(central)
        assert len(stored) == len(set(stored)) == len(sent)
        wait_for(lambda: central.db()["devices"].get(DEVICE)["online"], 10, "the retained 'online' taken")
    finally:
        producer.stop()
        runtime.stop(drain_s=0)
        ingest.stop()
        central.close()


def test_a_dispatch_goes_down_to_a_badge_through_nats_and_its_answers_come_back(tmp_path, nats):
    centre = Centre(tmp_path, nats.url, protocol="3.1.1")
    badge = start_badge(tmp_path, nats.url, "badge-1", point(100), centre, mqtt={"protocol": "3.1.1"})
    camera = Camera(nats.url, protocol="3.1.1")
    try:
        event_id = camera.event(point(0))
        [item] = wait_for(inbox_has(badge), what="the dispatch through NATS")
        assert item.dispatch.event_id == event_id
        badge.acknowledge()
        badge.resolve("Nobody there.")
        wait_for(lambda: centre.dispatches(state="resolved"), what="resolved at central")
    finally:
        camera.stop()
        badge.stop()
        centre.stop()


def test_mqtt_5_against_nats_is_refused_with_a_line_that_says_what_to_change(nats, caplog):
    link = Link(MqttSection(url=nats.url, protocol="5"), "cam-v5")
    with caplog.at_level(logging.ERROR, logger="kuzet.shared.mqtt"):
        link.start(wait_s=2)
        link.stop()
    assert not link.connected.is_set()
    assert any('set [mqtt] protocol = "3.1.1"' in record.getMessage() for record in caplog.records)


def test_share_group_is_refused_without_mqtt_5():
    config = {"mqtt": {"url": "mqtt://nats:1883", "protocol": "3.1.1"}, "ingest": {"share_group": "ingest"}}
    with pytest.raises(ConfigError) as refused:
        parse(config, central_config.CentralConfig, "central.toml")
    assert 'ingest.share_group: shared subscriptions need [mqtt] protocol = "5"' in str(refused.value)
    config["mqtt"]["protocol"] = "5"
    assert parse(config, central_config.CentralConfig).ingest.share_group == "ingest"
