"""Helpers for the signed-update tests of every kind of device: a device provisioned by site-init with its own
Mosquitto, central's side of its link (site-init's central certificate), bundles signed and tampered with, and
a real HTTP server to fetch them from."""

from __future__ import annotations

import functools
import getpass
import http.server
import io
import tarfile
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kuzet.central.broker import free_port
from kuzet.provisioning import signing
from kuzet.provisioning.bundle import write_folder
from kuzet.provisioning.device import provision_device
from kuzet.provisioning.site import SiteSettings
from kuzet.provisioning.site_init import central_mqtt_section, init_site
from kuzet.shared import ids, messages, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

SITE = "pavlodar"


def rewrite(bundle: Path, out: Path, change) -> Path:
    """Copy a bundle tar, passing every (name, bytes) through ``change`` (None drops the member)."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            result = change(member.name, data)
            if result is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(result)
            dst.addfile(info, io.BytesIO(result))
    return out


class Served:
    """A real HTTP server on 127.0.0.1 for bundles (as central or a technician's laptop serves them)."""

    def __init__(self, folder: Path, handler=None):
        handler = handler or functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Central:
    """Central as the device sees it: site-init's central certificate; records what arrives, sends commands."""

    def __init__(self, paths, settings, device: str):
        section = MqttSection.model_validate(central_mqtt_section(paths, settings))
        self.device = device
        self.received: list = []
        self.cond = threading.Condition()
        self.link = Link(section, "central")
        self.link.subscribe(topics.all_up(), self._on_message)
        self.link.start()

    def _on_message(self, topic, payload):
        message = messages.decode(topic, payload)
        with self.cond:
            self.received.append(message)
            self.cond.notify_all()

    def _wait(self, match, timeout=60.0):
        with self.cond:
            assert self.cond.wait_for(lambda: any(match(m) for m in self.received), timeout), "nothing came"
            return [m for m in self.received if match(m)][-1]

    def send(self, kind: str, message: messages.Envelope) -> None:
        self.link.publish(topics.down(SITE, self.device, kind), messages.encode(message)).wait_for_publish(5)

    def command(self, name: str, **args) -> messages.CommandResult:
        command = messages.Command(device=self.device, command_id=ids.new_id(), name=name, args=args)
        self.send("command", command)
        return self._wait(lambda m: m.type == "command_result" and m.command_id == command.command_id)

    def next_status(self) -> messages.Status:
        """A heartbeat sent after this call: the device is still running, and says how."""
        with self.cond:
            seen = self._statuses()
            assert self.cond.wait_for(lambda: len(self._statuses()) > len(seen), 60), "no heartbeat"
            return self._statuses()[-1]

    def _statuses(self) -> list:
        return [m for m in self.received if m.type == "status"]


@dataclass
class Provisioned:
    """A device provisioned by site-init's CA, its bundle written where /etc/kuzet would be."""

    device_id: str
    folder: Path  # config.toml, update.pub, certificates
    config: dict  # config.toml as written by ``kuzet provision device``
    central: Central
    key: object  # the site's update signing key

    def write_config(self, config: dict) -> Path:
        import tomli_w

        path = self.folder / "config.toml"
        path.write_text(tomli_w.dumps(config))
        return path


def provision(tmp_path: Path, mosquitto_factory, kind: str, name: str) -> Provisioned:
    """site-init, its Mosquitto (TLS, per-device ACL), and one device of ``kind``."""
    port = free_port()
    settings = SiteSettings(
        site=SITE, broker_hosts=["localhost"], broker_port=port, broker_user=getpass.getuser()
    )
    paths = init_site(tmp_path / "site", settings, listen="127.0.0.1")
    mosquitto_factory(config=paths.mosquitto_conf.read_text(), port=port)
    record, bundle = provision_device(paths, settings, kind, name)
    folder = write_folder(bundle, tmp_path / "etc-kuzet")
    config = tomllib.loads((folder / "config.toml").read_text())
    central = Central(paths, settings, record.device_id)
    return Provisioned(record.device_id, folder, config, central, signing.load_private_key(paths.signing_key))


def signed(tmp_path: Path, key, kind: str, version: str, files: dict[str, str | bytes]) -> Path:
    """A bundle of ``kind`` and ``version`` holding ``files`` (name -> contents), signed with ``key``."""
    source = tmp_path / f"{kind}-src-{version}-{ids.new_id()}"
    source.mkdir(parents=True)
    for name, data in files.items():
        (source / name).write_bytes(data.encode() if isinstance(data, str) else data)
    out = source.parent / f"{source.name}.tar"
    signing.sign_update(source, out, key, kind, version)
    return out
