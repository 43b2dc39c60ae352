"""``kuzet provision site-init``: everything a new site needs, in one folder.

Creates the CA, the Ed25519 update-signing key, the Ed25519 watchlist key central signs the cameras' face
watchlist with (its own, so that central can sign nothing else a device installs), the broker's server certificate, Mosquitto's configuration
(mutual TLS, ACL, CRL), central's client certificate with a ready ``[mqtt]`` section for its config, one more
for each of central's workers (``--central-worker``, provisioning/workers.py), and the read-only certificate
``kuzet provision verify --mqtt`` connects with.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import tomli_w

from kuzet.provisioning import broker_config, signing, workers
from kuzet.provisioning.ca import CertificateAuthority, cert_pem, key_pem, write_private
from kuzet.provisioning.site import SiteError, SitePaths, SiteSettings, broker_urls, save_settings


def init_site(
    root: Path, settings: SiteSettings, listen: str = "", central_workers: Sequence[str] = ()
) -> SitePaths:
    paths = SitePaths(Path(root).resolve())
    if paths.settings_file.exists() or paths.ca_key.exists():
        raise SiteError(f"{paths.root} already holds a site; refusing to overwrite its CA and keys")
    workers.check_names(central_workers)  # before anything is made: a bad name leaves no half-made site
    for folder in (
        paths.ca_key.parent,
        paths.signing_key.parent,
        paths.broker_dir,
        paths.central_dir,
        paths.tool_dir,
    ):
        folder.mkdir(parents=True, exist_ok=True)
    paths.ca_key.parent.chmod(0o700)
    paths.signing_key.parent.chmod(0o700)
    ca = CertificateAuthority.create(paths.ca_key, paths.ca_cert, paths.registry, settings.site)
    signing.create_keypair(paths.signing_key, paths.signing_public_key)
    signing.create_keypair(paths.watchlist_key, paths.watchlist_public_key)

    server_names = settings.broker_hosts + settings.standby_broker_hosts
    key, cert = ca.issue("broker", "broker", server_names=server_names, client=False)
    write_private(paths.broker_key, key_pem(key))
    paths.broker_cert.write_bytes(cert_pem(cert))
    shutil.copyfile(paths.ca_cert, paths.broker_ca)
    paths.crl.write_bytes(ca.crl_pem())

    key, cert = ca.issue(broker_config.CENTRAL_IDENTITY, "central")
    write_private(paths.central_dir / "central.key", key_pem(key))
    (paths.central_dir / "central.crt").write_bytes(cert_pem(cert))
    shutil.copyfile(paths.ca_cert, paths.central_dir / "ca.crt")
    (paths.central_dir / "mqtt.toml").write_text(
        "# Central's [mqtt] section: paste into central's config (paths are absolute).\n"
        + tomli_w.dumps({"mqtt": central_mqtt_section(paths, settings)})
    )
    (paths.central_dir / "watchlist.toml").write_text(
        "# Central's [watchlist] section: paste into central's config (the path is absolute).\n"
        + tomli_w.dumps({"watchlist": {"signing_key": str(paths.watchlist_key)}})
    )
    key, cert = ca.issue(broker_config.TOOL_IDENTITY, "tool")
    write_private(paths.tool_dir / "tool.key", key_pem(key))
    (paths.tool_dir / "tool.crt").write_bytes(cert_pem(cert))
    issued = workers.issue(paths, settings, ca, central_workers)
    save_settings(paths.root, settings)
    broker_config.write_config(paths, settings, listen, [worker.identity for worker in issued])
    return paths


def central_mqtt_section(paths: SitePaths, settings: SiteSettings) -> dict:
    return {
        "brokers": broker_urls(settings),
        "tls": {
            "ca": str(paths.central_dir / "ca.crt"),
            "cert": str(paths.central_dir / "central.crt"),
            "key": str(paths.central_dir / "central.key"),
        },
    }


def tool_mqtt_section(paths: SitePaths, settings: SiteSettings) -> dict:
    """The ``[mqtt]`` section the technician's tool connects with (read-only in the ACL)."""
    if not (paths.tool_dir / "tool.key").exists():
        raise SiteError(
            f"{paths.root} has no certificate for the technician's tool ({paths.tool_dir / 'tool.key'}); "
            "it was made by an older site-init: use 'kuzet provision verify' through central instead of --mqtt"
        )
    return {
        "brokers": broker_urls(settings),
        "tls": {
            "ca": str(paths.ca_cert),
            "cert": str(paths.tool_dir / "tool.crt"),
            "key": str(paths.tool_dir / "tool.key"),
        },
    }
