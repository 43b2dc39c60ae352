"""Mosquitto's configuration for a site: mutual TLS only, the certificate's CN as the username and as the
client id, an ACL that gives every device least privilege within its site, and the CRL checked on every
handshake.

ACL (``%u`` is the client certificate's CN, i.e. the device id; ``<site>`` is the site's name, written in):

- a device writes only ``kuzet/v1/<site>/<its id>/up/#`` and reads only ``kuzet/v1/<site>/<its id>/down/#``;
- central (CN ``central``) reads every device's ``up`` topics and writes every ``down`` topic of the site, and so
  does each of central's workers (CN ``central-<worker>``, ``kuzet provision site-init --central-worker``): a
  central split over processes needs one certificate per process, since the CN is the client id;
- the technician's tool (CN ``provision-tool``, ``kuzet provision verify --mqtt``) only reads ``up`` topics.

The device lines are ``pattern`` lines, and Mosquitto applies patterns to every certificate, with ``%u`` its
CN: left alone they would let central's or the tool's certificate publish as a device named ``central`` or
``provision-tool`` (an event under ``kuzet/v1/<site>/provision-tool/up/event``). Mosquitto 2.0 cannot limit a
pattern to some usernames, so every name that is not a device's (``RESERVED_IDENTITIES``, which no device may
take) gets its own ``user`` entry with ``topic deny kuzet/v1/<site>/<name>/#``: a user entry's deny is checked
before any pattern, and it covers exactly the topics the patterns would have given that name. Each worker's
entry has that deny too; no device may take a name starting ``central-`` (``topics.is_reserved``).

Sizes: ``message_size_limit`` is the largest payload the contract allows (``messages.MAX_PAYLOAD_BYTES``) plus
headroom; a larger publish is dropped (MQTT 5: the PUBACK says so). ``max_packet_size`` is a little above it
for the topic and properties; a client sending a larger packet is disconnected.

Persistence: the queue kept for central while it is away, the sessions and the retained messages are saved
every ``BROKER_AUTOSAVE_S`` seconds, not every 30 minutes (Mosquitto's default). Not after every change: each
save rewrites everything the broker holds, and at 10,000 devices (sessions, and whatever queues while a
consumer is slow) saving per message took the whole broker (docs/scale.md). A crash loses at most what the
broker acknowledged in those seconds: central notices the restart (``$SYS/broker/uptime``, which central's
entry may read) and has the devices send it again (central/ingest/session.py).

``use_username_as_clientid`` makes the CN the MQTT client id too, so a device cannot connect with another's
client id and knock it off (MQTT drops the older session of a client id). Every program that connects needs
its own certificate for the same reason: central, each of its workers and the technician's tool have one each.

Mosquitto reads the CRL and the ACL when it starts and again on SIGHUP (``kuzet provision revoke`` runs the
site's reload command after rewriting them).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from kuzet.provisioning.site import SitePaths, SiteSettings
from kuzet.shared.messages import MAX_PAYLOAD_BYTES
from kuzet.shared.mqtt import BROKER_AUTOSAVE_S
from kuzet.shared.topics import RESERVED_NAMES

CENTRAL_IDENTITY = "central"
TOOL_IDENTITY = "provision-tool"  # the technician's laptop watching for check-ins: read-only
# The registry's role of a central worker's certificate: every active one gets central's lines in the ACL.
WORKER_ROLE = "central-worker"
# Names a device may not take: they would share central's (or a tool's) ACL entries and client id.
RESERVED_IDENTITIES = RESERVED_NAMES
assert {CENTRAL_IDENTITY, TOOL_IDENTITY} <= RESERVED_IDENTITIES

# The largest legitimate payload (a snapshot or a dispatch carrying one) plus headroom for a future field.
MESSAGE_SIZE_LIMIT = max(MAX_PAYLOAD_BYTES.values()) + 64 * 1024
# The whole packet: the payload plus the topic, properties and header.
MAX_PACKET_SIZE = MESSAGE_SIZE_LIMIT + 16 * 1024


def acl_text(site: str, workers: list[str] = (), revoked: list[str] = ()) -> str:
    """The site's ACL; ``workers`` are the CNs of central's workers, ``revoked`` those cut off."""
    text = (
        "# Kuzet site ACL (written by 'kuzet provision site-init'). Usernames are client certificate CNs.\n"
        "# Anything not granted here is refused.\n"
    )
    for identity in [CENTRAL_IDENTITY, *sorted(set(workers))]:
        text += _central_entry(site, identity)
    text += (
        f"user {TOOL_IDENTITY}\n"
        f"topic deny kuzet/v1/{site}/{TOOL_IDENTITY}/#\n"
        f"topic read kuzet/v1/{site}/+/up/#\n"
    )
    # Names that are not devices: the device patterns below must give them nothing (a user entry's deny is
    # checked before every pattern). Central and the tool have theirs above, with what they may do.
    for identity in sorted(RESERVED_IDENTITIES - {CENTRAL_IDENTITY, TOOL_IDENTITY}):
        text += f"\nuser {identity}\ntopic deny kuzet/v1/{site}/{identity}/#\n"
    text += (
        "\n"
        "# Every device (CN = its id): publish only under its own id in this site, read only its own commands.\n"
        f"pattern write kuzet/v1/{site}/%u/up/#\n"
        f"pattern read kuzet/v1/{site}/%u/down/#\n"
    )
    # The CRL stops a revoked device's next handshake; these stop an open connection's traffic at once
    # (Mosquitto applies a reloaded ACL to connected clients too).
    for identity in sorted(set(revoked)):
        text += f"\n# revoked\nuser {identity}\ntopic deny #\n"
    return text


def _central_entry(site: str, identity: str) -> str:
    """Central's privileges (central's own certificate or a worker's), and no device's under its name."""
    return (
        f"user {identity}\n"
        f"topic deny kuzet/v1/{site}/{identity}/#\n"
        f"topic read kuzet/v1/{site}/+/up/#\n"
        f"topic write kuzet/v1/{site}/+/down/#\n"
        "topic read $SYS/broker/uptime\n"  # how central tells that the broker restarted
        "\n"
    )


def mosquitto_conf_text(paths: SitePaths, settings: SiteSettings, listen: str = "") -> str:
    listener = f"listener {settings.broker_port} {listen}".rstrip()
    here = Path(settings.broker_install_dir) if settings.broker_install_dir else paths.broker_dir

    def at(path: Path) -> Path:
        return here / path.relative_to(paths.broker_dir)

    return (
        "# Kuzet site broker (written by 'kuzet provision site-init'): mutual TLS, per-device ACL, CRL.\n"
        f"user {settings.broker_user}\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"acl_file {at(paths.acl)}\n"
        "set_tcp_nodelay true\n"
        "max_queued_messages 100000\n"
        f"message_size_limit {MESSAGE_SIZE_LIMIT}\n"
        f"max_packet_size {MAX_PACKET_SIZE}\n"
        "persistence true\n"
        f"persistence_location {here / 'data'}/\n"
        "autosave_on_changes false\n"
        f"autosave_interval {BROKER_AUTOSAVE_S}\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
        "log_type notice\n"
        "log_type information\n"
        "connection_messages true\n"
        "\n"
        f"{listener}\n"
        f"cafile {at(paths.broker_ca)}\n"
        f"certfile {at(paths.broker_cert)}\n"
        f"keyfile {at(paths.broker_key)}\n"
        f"crlfile {at(paths.crl)}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "use_username_as_clientid true\n"
        "tls_version tlsv1.2\n"
    )


def write_config(paths: SitePaths, settings: SiteSettings, listen: str = "", workers: list[str] = ()) -> None:
    write_acl(paths, settings, workers, [])
    paths.mosquitto_conf.write_text(mosquitto_conf_text(paths, settings, listen))
    (paths.broker_dir / "data").mkdir(parents=True, exist_ok=True)
    grant_broker_access(paths, settings.broker_user)


def write_acl(paths: SitePaths, settings: SiteSettings, workers: list[str], revoked: list[str]) -> None:
    _replace(paths.acl, acl_text(settings.site, workers, revoked).encode())
    grant_broker_access(paths, settings.broker_user)


def write_crl(paths: SitePaths, crl_pem: bytes, broker_user: str) -> None:
    _replace(paths.crl, crl_pem)
    grant_broker_access(paths, broker_user)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # the broker never reads a half-written file


def grant_broker_access(paths: SitePaths, broker_user: str) -> None:
    """Let the account Mosquitto drops to read its key (0640, group of that account) and write its data.

    Only root can hand files to another account; otherwise the files stay the current user's, which is
    what a broker run as that user needs.
    """
    if os.geteuid() != 0:
        return
    try:
        account = pwd.getpwnam(broker_user)
    except KeyError:
        return
    for path in paths.broker_dir.rglob("*"):
        os.chown(path, 0 if path.is_file() else account.pw_uid, account.pw_gid)
    os.chown(paths.broker_dir, 0, account.pw_gid)
    os.chmod(paths.broker_dir, 0o750)
    os.chmod(paths.broker_key, 0o640)
