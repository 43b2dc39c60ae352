"""A new device identity: its id, key and certificate signed by the site CA, its config TOML, the files it
needs to reach the broker and to check signed updates, and the systemd unit that runs its agent. The result is
a ``Bundle`` the technician writes to a folder, a tar file, an SD card or an OS image.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

import tomli_w

from kuzet.provisioning import service
from kuzet.provisioning.bundle import Bundle
from kuzet.provisioning.ca import CertificateAuthority, cert_pem, key_pem
from kuzet.provisioning.site import SitePaths, SiteSettings, broker_url, broker_urls
from kuzet.shared import config, timeutil
from kuzet.shared.config import DeviceSection, MqttSection, Section
from kuzet.shared.topics import check_device_id

DeviceKind = Literal["camera", "badge"]
ID_PREFIX = {"camera": "cam", "badge": "badge"}
# The real config class of each kind of device, when that part of Kuzet is installed on this laptop: edge
# registers them under this entry-point group (pyproject.toml), so provisioning never imports edge.
CONFIG_CLASSES = "kuzet.device_configs"


# Settings that differ on a real device from the defaults meant for a laptop demo: state lives under /var/lib
# (the unit's StateDirectory), not beside the config in /etc; a device checks updates with the site's public
# key shipped beside its config (a relative path is relative to the config file). Only sections the device's
# config class has are written.
DEVICE_DEFAULTS: dict[str, dict] = {
    "badge": {
        "storage": {"dir": f"{service.STATE_DIR}/badge"},
        "gps": {"source": "serial", "port": "/dev/serial0"},
        "updates": {"public_key": "update.pub", "install_dir": f"{service.STATE_DIR}/badge/updates"},
    },
    "camera": {
        "storage": {"dir": f"{service.STATE_DIR}/camera"},
        "updates": {"public_key": "update.pub", "install_dir": f"{service.STATE_DIR}/camera/updates"},
        # the only key a face watchlist from central may be signed with (docs/faces.md)
        "faces": {"watchlist_key": "watchlist.pub"},
    },
}


class ProvisionError(RuntimeError):
    pass


class CoreDeviceConfig(Section):
    """The sections every device config has; used to check the TOML when the device's own class is absent."""

    device: DeviceSection
    mqtt: MqttSection


@dataclass(frozen=True)
class DeviceRecord:
    """What central is told about the device (and what ``kuzet provision register`` reads back)."""

    device_id: str
    kind: str
    name: str
    site: str
    lat: float | None
    lon: float | None

    def api_payload(self) -> dict:
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "name": self.name,
            "site": self.site,
            "lat": self.lat,
            "lon": self.lon,
        }


def new_device_id(kind: DeviceKind, taken: set[str]) -> str:
    for _ in range(100):
        candidate = f"{ID_PREFIX[kind]}-{secrets.token_hex(4)}"
        if candidate not in taken:
            return candidate
    raise ProvisionError("could not find a free device id")  # 100 collisions of 32 random bits: never


def device_config(record: DeviceRecord, settings: SiteSettings, with_defaults: bool = True) -> dict:
    """The device's TOML as a dict; key paths are relative to the config file, i.e. beside it in the bundle."""
    device = {"id": record.device_id, "site": record.site, "name": record.name}
    if record.lat is not None and record.lon is not None:
        device.update(lat=record.lat, lon=record.lon)
    return {
        "device": device,
        "mqtt": {
            "brokers": broker_urls(settings),
            "protocol": "5",
            "tls": {"ca": "ca.crt", "cert": "device.crt", "key": "device.key"},
        },
        **(DEVICE_DEFAULTS[record.kind] if with_defaults else {}),
    }


def config_model(kind: DeviceKind) -> tuple[type[Section], bool]:
    """The device's real config class when importable here (True), else the sections every device has."""
    for point in entry_points(group=CONFIG_CLASSES, name=kind):
        try:
            return point.load(), True
        except (ImportError, AttributeError):
            break
    return CoreDeviceConfig, False


def provision_device(
    paths: SitePaths,
    settings: SiteSettings,
    kind: DeviceKind,
    name: str,
    lat: float | None = None,
    lon: float | None = None,
    device_id: str | None = None,
) -> tuple[DeviceRecord, Bundle]:
    if (lat is None) != (lon is None):
        raise ProvisionError("give both --lat and --lon, or neither")
    ca = CertificateAuthority.load(paths.ca_key, paths.ca_cert, paths.registry)
    taken = {row.common_name for row in ca.issued()}
    if device_id is None:
        device_id = new_device_id(kind, taken)
    else:
        check_device_id(device_id)
        if device_id in taken:
            raise ProvisionError(
                f"{device_id!r} already has a certificate from this CA; a replacement device gets a new id"
            )
    record = DeviceRecord(device_id, kind, name, settings.site, lat, lon)
    model, real = config_model(kind)
    data = device_config(record, settings, with_defaults=real)
    config.parse(data, model)  # ConfigError names the bad key; nothing is issued before this passes

    key, cert = ca.issue(device_id, kind)
    bundle = Bundle(device_id=device_id)
    bundle.add("config.toml", tomli_w.dumps(data).encode())
    bundle.add("ca.crt", paths.ca_cert.read_bytes())
    bundle.add("device.crt", cert_pem(cert))
    bundle.add("device.key", key_pem(key), secret=True)
    bundle.add("update.pub", paths.signing_public_key.read_bytes())
    if kind == "camera" and paths.watchlist_public_key.exists():  # a site made before it has none
        bundle.add("watchlist.pub", paths.watchlist_public_key.read_bytes())
    bundle.add(service.unit_name(kind), service.unit_text(kind).encode())
    bundle.add(
        "device.json",
        json.dumps(
            record.api_payload() | {"broker": broker_url(settings), "provisioned_at": timeutil.now_wire()},
            indent=1,
        ).encode(),
    )
    return record, bundle


def read_record(bundle: Bundle) -> DeviceRecord:
    raw = json.loads(bundle.files["device.json"].data)
    return DeviceRecord(**{k: raw.get(k) for k in DeviceRecord.__dataclass_fields__})
