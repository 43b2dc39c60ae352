"""Issue 17, items 18, 1 (config) and 6 (ACL), against a real Mosquitto started with the configuration
``kuzet provision site-init`` writes, and real certificates from the site's CA:

- (6) the technician's tool's certificate (read-only) could publish a critical panic event as a device, because
  the ACL's device ``pattern`` lines applied to its CN too; central's certificate likewise;
- (18) the broker took 100 MB messages;
- (1) persistence without autosave: a broker killed lost what it held since it started (30 minutes' default);
  now it saves every few seconds (what a kill loses of those seconds central has sent again: test_broker_crash).
"""

from __future__ import annotations

import time

import paho.mqtt.client as paho
import pytest
from support.provision import SITE, Client, nothing_but

from kuzet.central.broker import MosquittoServer
from kuzet.provisioning import broker_config
from kuzet.provisioning.bundle import write_folder
from kuzet.provisioning.device import config_model, provision_device
from kuzet.provisioning.site_init import tool_mqtt_section
from kuzet.shared import ids, messages, topics
from kuzet.shared.config import MqttSection, load
from kuzet.shared.mqtt import BROKER_AUTOSAVE_S


def _device(tmp_path, site, name: str, kind: str = "camera") -> tuple[str, MqttSection]:
    paths, settings, _ = site
    record, bundle = provision_device(paths, settings, kind, name, lat=52.28, lon=76.96)
    folder = write_folder(bundle, tmp_path / record.device_id)
    return record.device_id, load(folder / "config.toml", config_model(kind)[0]).mqtt


def _central_section(site) -> MqttSection:
    paths, settings, _ = site
    return MqttSection.model_validate(
        {
            "url": f"mqtts://localhost:{settings.broker_port}",
            "tls": {
                "ca": paths.central_dir / "ca.crt",
                "cert": paths.central_dir / "central.crt",
                "key": paths.central_dir / "central.key",
            },
        }
    )


def _tool_section(site) -> MqttSection:
    paths, settings, _ = site
    return MqttSection.model_validate(tool_mqtt_section(paths, settings))


def _panic(device: str) -> bytes:
    return messages.encode(
        messages.Event(
            device=device,
            event_id=ids.new_id(),
            seq=0,
            state="open",
            event_type="panic",
            severity="critical",
            label="officer",
            score=1.0,
            started_at=messages.timeutil.utc_now(),
        )
    )


def _status(device: str) -> bytes:
    return messages.encode(messages.Status(device=device, kind="camera", software_version="t", uptime_s=1.0))


@pytest.mark.parametrize("protocol", [paho.MQTTv5, paho.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_the_tools_certificate_cannot_publish_as_a_device(tmp_path, site, protocol):
    camera_id, camera_mqtt = _device(tmp_path, site, "Torajgyrov 12 north")
    port = site[1].broker_port
    central = Client(_central_section(site), "central", port)
    central.subscribe(topics.all_up())
    tool = Client(_tool_section(site), "provision-tool", port, protocol=protocol)
    camera = Client(camera_mqtt, camera_id, port)
    try:
        forged = [
            topics.up(SITE, broker_config.TOOL_IDENTITY, "event"),  # as a device named after the tool
            topics.up(SITE, camera_id, "event"),  # as a real camera
        ]
        for topic in forged:
            device = topic.split("/")[3]
            tool.publish(topic, _panic(device)).wait_for_publish(5)
            if protocol == paho.MQTTv5:
                reason = tool.acks.get(timeout=5)
                assert reason.is_failure and "authori" in str(reason).lower(), (topic, str(reason))
        marker = topics.up(SITE, camera_id, "status")
        camera.publish(marker, _status(camera_id)).wait_for_publish(5)
        assert nothing_but(central.received, marker) == []
    finally:
        for client in (camera, tool, central):
            client.stop()


def test_centrals_certificate_cannot_publish_as_a_device_either(tmp_path, site):
    camera_id, camera_mqtt = _device(tmp_path, site, "Torajgyrov 12 north")
    port = site[1].broker_port
    tool = Client(_tool_section(site), "provision-tool", port)  # it may read every up topic: the witness
    tool.subscribe(topics.all_up())
    central = Client(_central_section(site), "central", port)
    camera = Client(camera_mqtt, camera_id, port)
    try:
        central.publish(topics.up(SITE, broker_config.CENTRAL_IDENTITY, "event"), _panic("central"))
        assert central.acks.get(timeout=5).is_failure
        marker = topics.up(SITE, camera_id, "status")
        camera.publish(marker, _status(camera_id)).wait_for_publish(5)
        assert nothing_but(tool.received, marker) == []
        # What central must do still works: command a device.
        camera.subscribe(topics.down(SITE, camera_id, "command"))
        command = messages.Command(device=camera_id, command_id=ids.new_id(), name="snapshot")
        central.publish(topics.down(SITE, camera_id, "command"), messages.encode(command))
        assert camera.received.get(timeout=5)[0] == topics.down(SITE, camera_id, "command")
    finally:
        for client in (camera, central, tool):
            client.stop()


def test_oversized_messages_are_refused_and_the_largest_legitimate_ones_pass(tmp_path, site):
    camera_id, camera_mqtt = _device(tmp_path, site, "Torajgyrov 12 north")
    other_id, other_mqtt = _device(tmp_path, site, "Torajgyrov 12 south")
    port = site[1].broker_port
    central = Client(_central_section(site), "central", port)
    central.subscribe(topics.all_up())
    camera = Client(camera_mqtt, camera_id, port)
    try:
        chunk = messages.ClipChunk(
            device=camera_id,
            clip_id=ids.new_id(),
            index=0,
            count=1,
            size=messages.CLIP_CHUNK_BYTES,
            sha256="0" * 64,
            chunk_sha256="0" * 64,
            content_type="video/mp4",
            data=messages.to_base64(b"\x00" * messages.CLIP_CHUNK_BYTES),
        )
        clip_topic = topics.up(SITE, camera_id, "clip")
        camera.publish(clip_topic, messages.encode(chunk)).wait_for_publish(5)
        assert not camera.acks.get(timeout=5).is_failure
        assert central.received.get(timeout=5)[0] == clip_topic
        largest = max(messages.MAX_PAYLOAD_BYTES.values())  # a snapshot at the contract's limit
        snapshot_topic = topics.up(SITE, camera_id, "snapshot")
        camera.publish(snapshot_topic, b"x" * largest).wait_for_publish(5)
        assert not camera.acks.get(timeout=5).is_failure
        assert central.received.get(timeout=5)[0] == snapshot_topic

        # Just over the payload limit, and 2 MB: dropped by the broker. (Mosquitto 2.0.11 answers an MQTT 5
        # sender with PUBACK reason 0x95, which is not a valid PUBACK code, so paho drops the connection.)
        camera.stop()
        for size in (broker_config.MESSAGE_SIZE_LIMIT + 1, 2 * 1024 * 1024):
            sender = Client(camera_mqtt, camera_id, port)
            try:
                sender.publish(topics.up(SITE, camera_id, "event"), b"x" * size)
                time.sleep(1.0)
            finally:
                sender.stop()
        other = Client(other_mqtt, other_id, port)
        try:
            marker = topics.up(SITE, other_id, "status")
            other.publish(marker, _status(other_id)).wait_for_publish(5)
            assert nothing_but(central.received, marker) == []
        finally:
            other.stop()
    finally:
        camera.stop()
        central.stop()


def test_the_config_autosaves_and_a_killed_broker_keeps_what_it_held(tmp_path, site):
    paths, settings, broker = site
    conf = paths.mosquitto_conf.read_text()
    assert "autosave_on_changes false\n" in conf and f"autosave_interval {BROKER_AUTOSAVE_S}\n" in conf
    assert f"message_size_limit {broker_config.MESSAGE_SIZE_LIMIT}\n" in conf
    assert f"max_packet_size {broker_config.MAX_PACKET_SIZE}\n" in conf

    camera_id, camera_mqtt = _device(tmp_path, site, "Torajgyrov 12 north")
    port = settings.broker_port
    # Central has a session that outlives its connection: the broker queues for it while it is away.
    central = Client(_central_section(site), "central", port, protocol=paho.MQTTv311, clean=False)
    central.subscribe(topics.all_up())
    central.stop()
    camera = Client(camera_mqtt, camera_id, port)
    availability = topics.up(SITE, camera_id, "availability")
    queued = topics.up(SITE, camera_id, "status")
    try:
        camera.publish(availability, b'{"retained": true}', retain=True).wait_for_publish(5)
        camera.publish(queued, _status(camera_id)).wait_for_publish(5)
    finally:
        camera.stop()
    time.sleep(BROKER_AUTOSAVE_S + 1.0)  # saved at least once since
    broker.process.kill()  # a crash: no saving on the way out
    broker.process.wait()

    again = MosquittoServer(port=port, config=conf, workdir=tmp_path / "mosquitto-again").start()
    try:
        central = Client(_central_section(site), "central", port, protocol=paho.MQTTv311, clean=False)
        try:
            got = {central.received.get(timeout=5)[0] for _ in range(2)}
            assert queued in got and availability in got
        finally:
            central.stop()
    finally:
        again.stop()
