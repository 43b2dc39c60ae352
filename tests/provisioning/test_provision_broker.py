"""Against a real Mosquitto configured by site-init: provisioned devices connect and publish, central receives;
a device cannot speak for another (nor for itself in another site), cannot take over another's session;
revoked devices, devices without a certificate and devices of another CA are refused at the TLS handshake,
with the alert that says why, while a good device connects in the same test."""

from __future__ import annotations

import queue
import ssl
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from support.provision import SITE, tls_alert

from kuzet.central.broker import free_port
from kuzet.provisioning.bundle import write_folder
from kuzet.provisioning.device import config_model, provision_device
from kuzet.provisioning.revoke import revoke_device
from kuzet.provisioning.site_init import init_site
from kuzet.shared import messages, topics
from kuzet.shared.config import MqttSection, load
from kuzet.shared.mqtt import Link


def provision(tmp_path, site, name="Torajgyrov 12 north") -> tuple[str, MqttSection]:
    paths, settings, _ = site
    record, bundle = provision_device(paths, settings, "camera", name, lat=52.28, lon=76.96)
    folder = write_folder(bundle, tmp_path / record.device_id)
    config = load(folder / "config.toml", config_model("camera")[0])  # exactly what the agent will read
    return record.device_id, config.mqtt


def central_link(site, protocol="5") -> tuple[Link, queue.Queue]:
    paths, settings, _ = site
    section = MqttSection.model_validate(
        {
            "url": f"mqtts://localhost:{settings.broker_port}",
            "protocol": protocol,
            "tls": {
                "ca": paths.central_dir / "ca.crt",
                "cert": paths.central_dir / "central.crt",
                "key": paths.central_dir / "central.key",
            },
        }
    )
    received: queue.Queue = queue.Queue()
    link = Link(section, "central-test")
    link.subscribe(topics.all_up(), lambda topic, payload: received.put((topic, payload)))
    link.start()
    assert link.connected.is_set()
    time.sleep(0.2)  # the SUBACK
    return link, received


def status(device_id: str) -> bytes:
    return messages.encode(
        messages.Status(device=device_id, kind="camera", software_version="test", uptime_s=1.0)
    )


def raw_client(mqtt: MqttSection, client_id: str, protocol=paho.MQTTv5) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    tls = mqtt.tls
    client.tls_set(
        ca_certs=str(tls.ca),
        certfile=str(tls.cert) if tls.cert else None,
        keyfile=str(tls.key) if tls.key else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )
    return client


def try_connect(mqtt: MqttSection, client_id: str, port: int) -> str:
    client = raw_client(mqtt, client_id)
    done = threading.Event()
    client.on_connect = lambda *args: done.set()
    client.on_disconnect = lambda *args: done.set()
    try:
        client.connect("localhost", port, keepalive=10)
        client.loop_start()
        done.wait(5)
        return "connected" if client.is_connected() else "refused"
    except (ssl.SSLError, OSError) as exc:
        return f"handshake failed: {exc}"
    finally:
        client.loop_stop()
        client.disconnect()


def test_provisioned_device_connects_and_central_receives(tmp_path, site):
    device_id, mqtt = provision(tmp_path, site)
    central, received = central_link(site)
    device = Link(mqtt, device_id).start()
    try:
        assert device.connected.is_set()
        topic = topics.up(SITE, device_id, "status")
        device.publish(topic, status(device_id)).wait_for_publish(5)
        got_topic, payload = received.get(timeout=5)
        assert got_topic == topic
        assert messages.decode(got_topic, payload).device == device_id
    finally:
        device.stop()
        central.stop()


def test_device_cannot_publish_under_another_id_mqtt5(tmp_path, site):
    thief_id, thief_mqtt = provision(tmp_path, site, "stolen camera")
    victim_id, _ = provision(tmp_path, site, "victim camera")
    central, received = central_link(site)
    client = raw_client(thief_mqtt, thief_id)
    acks: queue.Queue = queue.Queue()
    client.on_publish = lambda c, u, mid, reason_code, props: acks.put(reason_code)
    try:
        client.connect("localhost", site[1].broker_port)
        client.loop_start()
        forged = topics.up(SITE, victim_id, "status")
        client.publish(forged, status(victim_id), qos=1)
        reason = acks.get(timeout=5)
        assert reason.is_failure and "authori" in str(reason).lower()
        # and its own topic still works, so the refusal above is the ACL, not a broken link
        own = topics.up(SITE, thief_id, "status")
        client.publish(own, status(thief_id), qos=1)
        assert not acks.get(timeout=5).is_failure
        assert received.get(timeout=5)[0] == own
        assert received.empty()
    finally:
        client.loop_stop()
        client.disconnect()
        central.stop()


def test_device_cannot_publish_under_another_id_mqtt311_message_never_arrives(tmp_path, site):
    thief_id, thief_mqtt = provision(tmp_path, site, "stolen badge")
    victim_id, _ = provision(tmp_path, site, "victim")
    central, received = central_link(site)
    thief = Link(thief_mqtt.model_copy(update={"protocol": "3.1.1"}), thief_id).start()
    try:
        thief.publish(topics.up(SITE, victim_id, "status"), status(victim_id)).wait_for_publish(5)
        # then a marker on its own topic: once the marker arrives, the forged message had its chance
        own = topics.up(SITE, thief_id, "status")
        thief.publish(own, status(thief_id)).wait_for_publish(5)
        assert received.get(timeout=5)[0] == own
        assert received.empty()
    finally:
        thief.stop()
        central.stop()


def test_device_cannot_read_another_devices_commands_or_traffic(tmp_path, site):
    spy_id, spy_mqtt = provision(tmp_path, site, "spy")
    victim_id, victim_mqtt = provision(tmp_path, site, "victim")
    central, _ = central_link(site)
    seen: queue.Queue = queue.Queue()
    spy = Link(spy_mqtt, spy_id)
    spy.subscribe("kuzet/v1/+/+/down/#", lambda topic, payload: seen.put(topic))
    spy.subscribe("kuzet/v1/+/+/up/#", lambda topic, payload: seen.put(topic))
    spy.start()
    victim = Link(victim_mqtt, victim_id).start()
    time.sleep(0.2)  # the SUBACKs
    try:
        victim.publish(topics.up(SITE, victim_id, "status"), status(victim_id)).wait_for_publish(5)
        for device in (victim_id, spy_id):
            command = messages.Command(device=device, command_id=messages.ids.new_id(), name="snapshot")
            central.publish(topics.down(SITE, device, "command"), messages.encode(command)).wait_for_publish(
                5
            )
        # Mosquitto delivers in the order it accepted: had the spy been given the victim's status or command,
        # they would come before its own command.
        assert seen.get(timeout=5) == topics.down(SITE, spy_id, "command")
        assert seen.empty()
    finally:
        victim.stop()
        spy.stop()
        central.stop()


def test_device_without_certificate_cannot_connect(tmp_path, site):
    port = site[1].broker_port
    device_id, mqtt = provision(tmp_path, site)
    anonymous = mqtt.tls.model_copy(update={"cert": None, "key": None})
    assert tls_alert(anonymous, port) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert tls_alert(mqtt.tls, port) is None  # the same broker takes the device's certificate
    assert try_connect(mqtt, device_id, port) == "connected"


def test_device_with_certificate_from_another_ca_cannot_connect(tmp_path, site, mosquitto_factory):
    port = site[1].broker_port
    rogue_settings = site[1].model_copy(update={"broker_port": free_port()})
    rogue_paths = init_site(tmp_path / "rogue-site", rogue_settings)
    record, bundle = provision_device(rogue_paths, rogue_settings, "camera", "rogue")
    folder = write_folder(bundle, tmp_path / "rogue-device")
    rogue = load(folder / "config.toml", config_model("camera")[0]).mqtt
    # trust the real site's broker, present the rogue CA's certificate
    real_id, real = provision(tmp_path, site)
    rogue = rogue.model_copy(update={"tls": rogue.tls.model_copy(update={"ca": real.tls.ca})})
    assert tls_alert(rogue.tls, port) == "TLSV1_ALERT_UNKNOWN_CA"
    assert try_connect(rogue, record.device_id, port) != "connected"
    assert try_connect(real, real_id, port) == "connected"


def test_revoked_device_is_cut_off_and_cannot_reconnect(tmp_path, site):
    paths, settings, broker = site
    port = settings.broker_port
    device_id, mqtt = provision(tmp_path, site)
    other_id, other_mqtt = provision(tmp_path, site, "colleague")
    central, received = central_link(site)
    device = Link(mqtt, device_id).start()
    try:
        assert device.connected.is_set()
        revocation = revoke_device(paths, settings, device_id, broker_pid=broker.process.pid)
        assert revocation.broker_reloaded and revocation.certificates
        time.sleep(0.5)  # the broker handles SIGHUP between network events
        # the open connection can no longer publish ...
        device.publish(topics.up(SITE, device_id, "status"), status(device_id)).wait_for_publish(5)
        # ... and a new connection is refused at the handshake, for being revoked
        assert tls_alert(mqtt.tls, port) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        assert try_connect(mqtt, device_id, port) != "connected"
        # while other devices carry on
        assert tls_alert(other_mqtt.tls, port) is None
        assert try_connect(other_mqtt, other_id, port) == "connected"
        own = topics.up(SITE, other_id, "status")
        other = Link(other_mqtt, other_id).start()
        other.publish(own, status(other_id)).wait_for_publish(5)
        other.stop()
        assert received.get(timeout=5)[0] == own
        assert received.empty()
        # a restart of the broker (reboot, upgrade) keeps it out too, and lets the others in
        broker.stop()
        broker.start()
        assert tls_alert(mqtt.tls, port) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        assert try_connect(other_mqtt, other_id, port) == "connected"
    finally:
        device.stop()
        central.stop()


def test_a_device_cannot_take_over_another_devices_session(tmp_path, site):
    """MQTT drops the older connection of a client id; the broker makes the client id the certificate's CN,
    so a stolen certificate cannot knock another device (or central) offline by borrowing its id."""
    port = site[1].broker_port
    victim_id, victim_mqtt = provision(tmp_path, site, "victim")
    thief_id, thief_mqtt = provision(tmp_path, site, "thief")
    central, received = central_link(site)
    victim = raw_client(victim_mqtt, victim_id)
    drops: list = []
    connected = threading.Event()
    victim.on_connect = lambda *args: connected.set()
    victim.on_disconnect = lambda client, userdata, flags, reason, props: drops.append(str(reason))
    thieves = []
    try:
        victim.connect("localhost", port)
        victim.loop_start()
        assert connected.wait(5)
        for name in (victim_id, "central", "central-pavlodar"):  # the victim's id, central's usual ids
            thief = raw_client(thief_mqtt, name)
            thieves.append(thief)
            accepted = threading.Event()
            thief.on_connect = lambda *args, accepted=accepted: accepted.set()
            thief.connect("localhost", port)
            thief.loop_start()
            assert accepted.wait(5)
        # After the thieves' CONNACKs: a take-over would have reached the victim before this publish's PUBACK.
        own = topics.up(SITE, victim_id, "status")
        victim.publish(own, status(victim_id), qos=1).wait_for_publish(5)
        assert received.get(timeout=5)[0] == own
        assert drops == [] and victim.is_connected()
        assert central.connected.is_set()
    finally:
        for client in [victim, *thieves]:
            client.loop_stop()
            client.disconnect()
        central.stop()


def test_device_cannot_publish_as_itself_under_another_site(tmp_path, site):
    device_id, mqtt = provision(tmp_path, site)
    central, received = central_link(site)
    client = raw_client(mqtt, device_id)
    acks: queue.Queue = queue.Queue()
    client.on_publish = lambda c, u, mid, reason_code, props: acks.put(reason_code)
    try:
        client.connect("localhost", site[1].broker_port)
        client.loop_start()
        client.publish(topics.up("astana", device_id, "status"), status(device_id), qos=1)
        reason = acks.get(timeout=5)
        assert reason.is_failure and "authori" in str(reason).lower()
        own = topics.up(SITE, device_id, "status")
        client.publish(own, status(device_id), qos=1)
        assert not acks.get(timeout=5).is_failure
        assert received.get(timeout=5)[0] == own
        assert received.empty()
    finally:
        client.loop_stop()
        client.disconnect()
        central.stop()


def test_verify_waits_for_the_devices_authenticated_check_in(tmp_path, site, capsys):
    from kuzet.shared.cli import main

    paths = site[0]
    device_id, mqtt = provision(tmp_path, site)
    silent_id, _ = provision(tmp_path, site, "never switched on")
    central, _ = central_link(site)  # verify has its own identity: it must not knock central off
    drops: list = []
    on_disconnect = central.client.on_disconnect
    central.client.on_disconnect = lambda *args: (drops.append(args[3]), on_disconnect(*args))
    result: list[int] = []
    verifier = threading.Thread(
        target=lambda: result.append(
            main(["provision", "verify", "--dir", str(paths.root), "--mqtt", device_id, "--timeout", "15"])
        )
    )
    verifier.start()
    device = Link(mqtt, device_id).start()
    try:
        while verifier.is_alive():  # a heartbeat, as the agent sends
            device.publish(topics.up(SITE, device_id, "status"), status(device_id))
            verifier.join(0.2)
    finally:
        device.stop()
    printed = capsys.readouterr().out
    assert result == [0]
    assert f"{device_id} checked in" in printed and "software_version: test" in printed
    assert main(["provision", "verify", "--dir", str(paths.root), "--mqtt", silent_id, "--timeout", "1"]) == 1
    assert drops == [] and central.connected.is_set()
    central.stop()


def test_site_acl_names_the_site_and_grants_the_tool_read_only(site):
    acl = site[0].acl.read_text()
    assert f"pattern write kuzet/v1/{SITE}/%u/up/#" in acl and "kuzet/v1/+/" not in acl
    tool = acl.split("user provision-tool\n", 1)[1].split("\n\n", 1)[0]
    # read-only; the deny keeps the device patterns from letting it publish as a device named after it
    assert tool.splitlines() == [
        f"topic deny kuzet/v1/{SITE}/provision-tool/#",
        f"topic read kuzet/v1/{SITE}/+/up/#",
    ]
