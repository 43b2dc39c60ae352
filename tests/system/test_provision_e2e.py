"""A technician's whole day against real parts: site-init's Mosquitto, central's ingest and web app using the
client certificate site-init made, a device provisioned and registered over the API, ``verify`` seeing its
first check-in and health through central, and ``revoke`` cutting it off at the broker and in central."""

from __future__ import annotations

import getpass
import json
import threading
import tomllib

import pytest
from support.provision import tls_alert

from kuzet.central.broker import free_port
from kuzet.provisioning.device import config_model
from kuzet.provisioning.site import SitePaths
from kuzet.shared import config, messages, topics
from kuzet.shared.cli import main
from kuzet.shared.mqtt import Link

web = pytest.importorskip("kuzet.central.web.server", reason="central's web app is not in this checkout")
ingest = pytest.importorskip(
    "kuzet.central.ingest.service", reason="central's ingest is not in this checkout"
)


def test_provision_verify_revoke_through_central(tmp_path, mosquitto_factory, capsys):
    from kuzet.central.auth import tokens, users
    from kuzet.central.config import CentralConfig
    from kuzet.central.context import Central

    site_dir, port = tmp_path / "site", free_port()
    assert (
        main(
            [
                "provision",
                "site-init",
                "--dir",
                str(site_dir),
                "--site",
                "kostanay",
                "--broker-host",
                "localhost",
            ]
            + ["--port", str(port), "--listen", "127.0.0.1", "--broker-user", getpass.getuser()]
        )
        == 0
    )
    paths = SitePaths(site_dir.resolve())
    broker = mosquitto_factory(config=paths.mosquitto_conf.read_text(), port=port)

    mqtt_section = tomllib.loads((paths.central_dir / "mqtt.toml").read_text())[
        "mqtt"
    ]  # as site-init wrote it
    central_config = config.parse({"central": {"site": "kostanay"}, "mqtt": mqtt_section}, CentralConfig)
    central = Central(config=central_config, data_dir=tmp_path / "central")
    users.create_user(central.db(), "tech", "correct horse battery", "technician", "Tech", actor="test")
    token = tokens.create_token(central.db(), "tech", "laptop", actor="test")
    service = ingest.IngestService(central).start()
    server = web.WebServer(central, host="127.0.0.1", port=free_port()).start()
    api = ["--central", server.url, "--token", token]
    device = None
    try:
        bundle = tmp_path / "bundle"
        rc = main(
            [
                "provision",
                "device",
                "--dir",
                str(site_dir),
                "--kind",
                "camera",
                "--name",
                "Baitursynov 5",
                "--out",
                str(bundle),
            ]
            + api
        )
        assert rc == 0, capsys.readouterr().err
        device_id = json.loads((bundle / "device.json").read_text())["device_id"]
        settings = config.load(bundle / "config.toml", config_model("camera")[0])

        result: list[int] = []
        verifier = threading.Thread(
            target=lambda: result.append(
                main(["provision", "verify", "--dir", str(site_dir), device_id, "--timeout", "20"] + api)
            )
        )
        verifier.start()
        device = Link(settings.mqtt, device_id).start()
        heartbeat = messages.Status(
            device=device_id, kind="camera", software_version="0.1.0", uptime_s=3.0, fps_processed=4.5
        )
        device.publish(
            topics.up("kostanay", device_id, "status"), messages.encode(heartbeat)
        ).wait_for_publish(5)
        verifier.join(30)
        printed = capsys.readouterr().out
        assert result == [0], printed
        assert f"{device_id} checked in" in printed and "fps_processed: 4.5" in printed

        rc = main(
            [
                "provision",
                "revoke",
                "--dir",
                str(site_dir),
                device_id,
                "--broker-pid",
                str(broker.process.pid),
            ]
            + api
        )
        assert rc == 0, capsys.readouterr().err
        assert central.db()["devices"].get(device_id)["revoked_at"]
        device.stop()
        # the same certificate is refused at the handshake for being revoked; a colleague's is taken
        assert tls_alert(settings.mqtt.tls, port) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        rc = main(
            ["provision", "device", "--dir", str(site_dir), "--kind", "camera", "--name", "Baitursynov 7"]
            + ["--out", str(tmp_path / "colleague"), "--no-register"]
        )
        assert rc == 0
        colleague = config.load(tmp_path / "colleague" / "config.toml", config_model("camera")[0])
        assert tls_alert(colleague.mqtt.tls, port) is None
    finally:
        if device is not None:
            device.stop()
        server.stop()
        service.stop()
