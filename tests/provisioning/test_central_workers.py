"""Central's workers (``site-init --central-worker``, ``kuzet provision central-worker``) against a real Mosquitto
configured by site-init: each worker has its own certificate, so two connect at once and neither pushes the
other off, each reads what devices send and commands them as central does; no device can take a worker's name
or speak under it; a revoked worker is refused at the handshake; revoking a device keeps the workers' ACL
entries."""

from __future__ import annotations

import getpass
import shutil
import time
import tomllib

import pytest
from support.provision import SITE, Client, nothing_but, tls_alert

from kuzet.central.broker import free_port
from kuzet.provisioning.bundle import write_folder
from kuzet.provisioning.device import config_model, provision_device
from kuzet.provisioning.revoke import revoke_device
from kuzet.provisioning.site import SiteSettings
from kuzet.provisioning.site_init import init_site
from kuzet.provisioning.workers import WorkerError, add_worker
from kuzet.shared import ids, messages, topics
from kuzet.shared.config import MqttSection, load

WORKERS = ("ingest-1", "web")


@pytest.fixture
def region(tmp_path, mosquitto_factory):
    """(paths, settings, broker): a site made with two central workers, served by a real Mosquitto."""
    port = free_port()
    settings = SiteSettings(
        site=SITE, broker_hosts=["localhost"], broker_port=port, broker_user=getpass.getuser()
    )
    paths = init_site(tmp_path / "site", settings, listen="127.0.0.1", central_workers=WORKERS)
    broker = mosquitto_factory(config=paths.mosquitto_conf.read_text(), port=port)
    return paths, settings, broker


def worker_mqtt(paths, name: str) -> MqttSection:
    """Exactly the ``[mqtt]`` section site-init wrote for the worker."""
    return MqttSection.model_validate(
        tomllib.loads((paths.worker_dir(name) / "mqtt.toml").read_text())["mqtt"]
    )


def camera(tmp_path, site, name: str) -> tuple[str, MqttSection]:
    paths, settings, _ = site
    record, bundle = provision_device(paths, settings, "camera", name, lat=52.28, lon=76.96)
    folder = write_folder(bundle, tmp_path / record.device_id)
    return record.device_id, load(folder / "config.toml", config_model("camera")[0]).mqtt


def status(device: str) -> bytes:
    return messages.encode(messages.Status(device=device, kind="camera", software_version="t", uptime_s=1.0))


def command(device: str) -> bytes:
    return messages.encode(messages.Command(device=device, command_id=ids.new_id(), name="snapshot"))


def acl_entry(paths, identity: str) -> str:
    """The lines of ``identity``'s one user entry in the ACL."""
    acl = paths.acl.read_text()
    assert acl.count(f"\nuser {identity}\n") == 1
    return acl.split(f"\nuser {identity}\n", 1)[1].split("\n\n", 1)[0].strip()


def test_two_workers_connect_at_once_and_each_reads_and_commands_the_devices(tmp_path, region):
    paths, settings, _ = region
    port = settings.broker_port
    camera_id, camera_mqtt = camera(tmp_path, region, "Torajgyrov 12 north")
    # Both ask for the same client id, as two processes with one configuration would: the broker takes each
    # certificate's CN instead, so neither session replaces the other.
    workers = [Client(worker_mqtt(paths, name), "central-pavlodar", port) for name in WORKERS]
    device = Client(camera_mqtt, camera_id, port)
    try:
        for worker in workers:
            worker.subscribe(topics.all_up())
        device.subscribe(topics.device_down(SITE, camera_id))
        up = topics.up(SITE, camera_id, "status")
        device.publish(up, status(camera_id)).wait_for_publish(5)
        for worker in workers:
            assert worker.received.get(timeout=5)[0] == up
        down = topics.down(SITE, camera_id, "command")
        for worker in workers:
            worker.publish(down, command(camera_id))
            assert not worker.acks.get(timeout=5).is_failure
            assert device.received.get(timeout=5)[0] == down
        time.sleep(0.5)  # a take-over would have closed the older connection by now
        assert [(w.drops, w.connected.is_set()) for w in workers] == [([], True), ([], True)]
    finally:
        for client in (device, *workers):
            client.stop()


def test_no_device_can_take_a_workers_name_or_speak_under_it(tmp_path, region):
    paths, settings, _ = region
    port = settings.broker_port
    with pytest.raises(topics.TopicError, match="reserved"):
        provision_device(paths, settings, "camera", "impostor", device_id="central-routing-a")
    camera_id, camera_mqtt = camera(tmp_path, region, "Torajgyrov 12 north")
    witness = Client(worker_mqtt(paths, "web"), "witness", port)
    witness.subscribe(topics.all_up())
    worker = Client(worker_mqtt(paths, "ingest-1"), "central-ingest-1", port)
    # A stolen device certificate asking for the worker's client id gets its own CN: the worker stays on.
    device = Client(camera_mqtt, "central-ingest-1", port)
    try:
        device.publish(topics.up(SITE, "central-ingest-1", "status"), status("central-ingest-1"))
        assert device.acks.get(timeout=5).is_failure  # a device writes under its own id only
        for forged in (topics.up(SITE, "central-ingest-1", "status"), topics.up(SITE, camera_id, "status")):
            worker.publish(forged, status(forged.split("/")[3]))
            assert worker.acks.get(
                timeout=5
            ).is_failure  # a worker sends nothing up, as itself or as a device
        marker = topics.up(SITE, camera_id, "status")
        device.publish(marker, status(camera_id)).wait_for_publish(5)
        assert nothing_but(witness.received, marker) == []
        assert worker.drops == [] and worker.connected.is_set()
    finally:
        for client in (device, worker, witness):
            client.stop()


def test_a_revoked_worker_is_refused_at_the_handshake_and_can_be_issued_anew(tmp_path, region):
    paths, settings, broker = region
    port = settings.broker_port
    # The key and certificate revoked, kept aside: a new issue overwrites the worker's folder.
    old = tmp_path / "old-ingest-1"
    shutil.copytree(paths.worker_dir("ingest-1"), old)
    revoked = worker_mqtt(paths, "ingest-1").tls.model_copy(
        update={"cert": old / "worker.crt", "key": old / "worker.key"}
    )
    revocation = revoke_device(paths, settings, "central-ingest-1", broker_pid=broker.process.pid)
    assert revocation.broker_reloaded and revocation.certificates
    time.sleep(0.5)  # the broker handles SIGHUP between network events
    assert tls_alert(revoked, port) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    assert tls_alert(worker_mqtt(paths, "web").tls, port) is None  # the other worker is untouched
    assert acl_entry(paths, "central-ingest-1") == "topic deny #"  # central's rights went with it
    assert acl_entry(paths, "central-web").splitlines()[1:] == [
        f"topic read kuzet/v1/{SITE}/+/up/#",
        f"topic write kuzet/v1/{SITE}/+/down/#",
        "topic read $SYS/broker/uptime",
    ]
    # A new certificate for the same worker (its key was lost): connects and reads as central does.
    worker, update = add_worker(paths, settings, "ingest-1", broker_pid=broker.process.pid)
    assert update.reloaded and worker.identity == "central-ingest-1"
    time.sleep(0.5)
    camera_id, camera_mqtt = camera(tmp_path, region, "Torajgyrov 12 north")
    renewed = Client(worker_mqtt(paths, "ingest-1"), "central-ingest-1", port)
    device = Client(camera_mqtt, camera_id, port)
    try:
        renewed.subscribe(topics.all_up())
        device.publish(topics.up(SITE, camera_id, "status"), status(camera_id))
        assert renewed.received.get(timeout=5)[0] == topics.up(SITE, camera_id, "status")
    finally:
        device.stop()
        renewed.stop()
    assert tls_alert(revoked, port) == "SSLV3_ALERT_CERTIFICATE_REVOKED"  # the old one stays out


def test_revoking_a_device_keeps_the_workers_entries(tmp_path, region):
    paths, settings, broker = region
    port = settings.broker_port
    add_worker(paths, settings, "routing-a", broker_pid=broker.process.pid)  # one added later is kept too
    entries = {cn: acl_entry(paths, cn) for cn in ("central-ingest-1", "central-web", "central-routing-a")}
    lost_id, _ = camera(tmp_path, region, "stolen")
    camera_id, camera_mqtt = camera(tmp_path, region, "Torajgyrov 12 north")
    assert revoke_device(paths, settings, lost_id, broker_pid=broker.process.pid).broker_reloaded
    time.sleep(0.5)
    assert {cn: acl_entry(paths, cn) for cn in entries} == entries
    assert acl_entry(paths, lost_id) == "topic deny #"
    workers = [Client(worker_mqtt(paths, name), name, port) for name in ("ingest-1", "web", "routing-a")]
    device = Client(camera_mqtt, camera_id, port)
    try:
        for worker in workers:
            worker.subscribe(topics.all_up())
        device.publish(topics.up(SITE, camera_id, "status"), status(camera_id))
        for worker in workers:
            assert worker.received.get(timeout=5)[0] == topics.up(SITE, camera_id, "status")
    finally:
        for client in (device, *workers):
            client.stop()


def test_a_worker_added_to_a_site_without_any_reads_and_commands_once_the_broker_reloads(tmp_path, site):
    paths, settings, broker = site
    worker, update = add_worker(paths, settings, "ingest-2", broker_pid=broker.process.pid)
    assert update.reloaded and worker.folder == paths.worker_dir("ingest-2")
    time.sleep(0.5)
    with pytest.raises(WorkerError, match="exists"):
        add_worker(paths, settings, "ingest-2")
    camera_id, camera_mqtt = camera(tmp_path, site, "Torajgyrov 12 north")
    client = Client(worker_mqtt(paths, "ingest-2"), "central-ingest-2", settings.broker_port)
    device = Client(camera_mqtt, camera_id, settings.broker_port)
    try:
        client.subscribe(topics.all_up())
        device.subscribe(topics.device_down(SITE, camera_id))
        device.publish(topics.up(SITE, camera_id, "status"), status(camera_id))
        assert client.received.get(timeout=5)[0] == topics.up(SITE, camera_id, "status")
        client.publish(topics.down(SITE, camera_id, "command"), command(camera_id))
        assert device.received.get(timeout=5)[0] == topics.down(SITE, camera_id, "command")
    finally:
        device.stop()
        client.stop()
