"""A site with a standby broker (``site-init --standby-broker-host``): every config it writes lists the
primary then the standby, the broker certificate names both, and a provisioned device whose primary is
unreachable reaches the standby over mutual TLS, its name checked against the certificate."""

from __future__ import annotations

import getpass
import tomllib

from cryptography import x509
from support.provision import SITE

from kuzet.central.broker import free_port
from kuzet.provisioning.bundle import write_folder
from kuzet.provisioning.device import config_model, provision_device
from kuzet.provisioning.site import SiteSettings
from kuzet.provisioning.site_init import init_site
from kuzet.shared.config import load
from kuzet.shared.mqtt import Link

PRIMARY, STANDBY = "127.0.0.2", "127.0.0.1"  # the broker below listens on 127.0.0.1 only: the primary is down


def test_every_written_config_lists_the_primary_then_the_standby(tmp_path, mosquitto_factory):
    port = free_port()
    settings = SiteSettings(
        site=SITE,
        broker_hosts=[PRIMARY],
        standby_broker_hosts=[STANDBY],
        broker_port=port,
        broker_user=getpass.getuser(),
    )
    paths = init_site(tmp_path / "site", settings, listen=STANDBY)
    brokers = [f"mqtts://{PRIMARY}:{port}", f"mqtts://{STANDBY}:{port}"]
    central = tomllib.loads((paths.central_dir / "mqtt.toml").read_text())
    assert central["mqtt"]["brokers"] == brokers
    names = x509.load_pem_x509_certificate(paths.broker_cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)} == {PRIMARY, STANDBY}

    record, bundle = provision_device(paths, settings, "camera", "Torajgyrov 12")
    config = load(
        write_folder(bundle, tmp_path / record.device_id) / "config.toml", config_model("camera")[0]
    )
    assert config.mqtt.brokers == brokers

    mosquitto_factory(config=paths.mosquitto_conf.read_text(), port=port)
    link = Link(config.mqtt.model_copy(update={"failover_after_s": 1}), record.device_id).start(wait_s=15)
    try:
        assert link.connected.is_set() and link.url == brokers[1]
    finally:
        link.stop()
