"""A site's folder on the technician's laptop: where the CA, the broker's files and the device bundles live.

One folder per site (``kuzet provision site-init --dir``); every other ``kuzet provision`` command reads
``site.toml`` there to learn the site's name, its broker address and central's URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tomli_w
from pydantic import Field

from kuzet.shared import config
from kuzet.shared.config import Name, Section

SITE_FILE = "site.toml"


class SiteSettings(Section):
    site: Name
    # Names and addresses devices use to reach the broker; the first is written into device configs.
    broker_hosts: Annotated[list[str], Field(min_length=1)]
    broker_port: Annotated[int, Field(ge=1, le=65535)] = 8883
    # The standby brokers' names, in the order devices try them after the primary (docs/brokers.md). Each runs
    # the same broker/ folder: one certificate names the primary and every standby.
    standby_broker_hosts: list[str] = []
    # The account Mosquitto drops to when started as root: it must be able to read the broker's files.
    broker_user: str = "mosquitto"
    central_url: str = ""
    # Where broker/ is copied to on the broker host (paths in mosquitto.conf); empty: broker/ right here.
    broker_install_dir: str = ""
    # Run after a revocation so the broker re-reads its CRL and ACL, e.g. "systemctl reload mosquitto"
    # (Mosquitto re-reads both on SIGHUP). Empty: the technician is told to do it.
    reload_command: str = ""


class SiteError(RuntimeError):
    pass


def broker_url(settings: SiteSettings) -> str:
    """The primary broker."""
    return f"mqtts://{settings.broker_hosts[0]}:{settings.broker_port}"


def broker_urls(settings: SiteSettings) -> list[str]:
    """``[mqtt] brokers`` for every config the site writes: the primary, then the standbys."""
    standbys = [f"mqtts://{host}:{settings.broker_port}" for host in settings.standby_broker_hosts]
    return [broker_url(settings), *standbys]


@dataclass(frozen=True)
class SitePaths:
    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / SITE_FILE

    # Certificate authority: the key never leaves the technician's laptop.
    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.crt"

    @property
    def registry(self) -> Path:
        return self.root / "ca" / "issued.json"

    # Update signing (Ed25519): the private half signs, the public half goes into every device bundle.
    @property
    def signing_key(self) -> Path:
        return self.root / "signing" / "update.key"

    @property
    def signing_public_key(self) -> Path:
        return self.root / "signing" / "update.pub"

    # The watchlist signing key (Ed25519): central holds the private half and signs the face watchlist with it
    # alone; the public half goes into every camera's bundle as the only key a watchlist may be signed with.
    @property
    def watchlist_key(self) -> Path:
        return self.central_dir / "watchlist.key"

    @property
    def watchlist_public_key(self) -> Path:
        return self.root / "signing" / "watchlist.pub"

    # What the broker reads.
    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def broker_cert(self) -> Path:
        return self.broker_dir / "server.crt"

    @property
    def broker_key(self) -> Path:
        return self.broker_dir / "server.key"

    @property
    def broker_ca(self) -> Path:
        return self.broker_dir / "ca.crt"

    @property
    def crl(self) -> Path:
        return self.broker_dir / "crl.pem"

    @property
    def acl(self) -> Path:
        return self.broker_dir / "acl"

    @property
    def mosquitto_conf(self) -> Path:
        return self.broker_dir / "mosquitto.conf"

    # Central's client identity.
    @property
    def central_dir(self) -> Path:
        return self.root / "central"

    # Central's workers (``--central-worker``): a folder each, with its own certificate and ``[mqtt]`` section.
    @property
    def workers_dir(self) -> Path:
        return self.central_dir / "workers"

    def worker_dir(self, name: str) -> Path:
        return self.workers_dir / name

    # The technician's tool (``verify --mqtt``): its own identity, so it never takes central's client id.
    @property
    def tool_dir(self) -> Path:
        return self.root / "tool"

    @property
    def devices_dir(self) -> Path:
        return self.root / "devices"


def load_settings(root: Path) -> SiteSettings:
    paths = SitePaths(Path(root))
    if not paths.settings_file.exists():
        raise SiteError(
            f"{root} is not a site folder (no {SITE_FILE}); create one with 'kuzet provision site-init'"
        )
    return config.load(paths.settings_file, SiteSettings)


def save_settings(root: Path, settings: SiteSettings) -> None:
    path = SitePaths(Path(root)).settings_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(settings.model_dump(exclude_none=True)))
