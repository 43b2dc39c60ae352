"""Central's workers: one MQTT identity each (``kuzet provision site-init --central-worker NAME``, or
``kuzet provision central-worker NAME`` for a site that exists).

A central split over processes (``kuzet central run --role``, docs/scale.md) needs a certificate per process:
the broker takes the certificate's CN as the client id, so two processes sharing central's certificate push
each other off. Worker ``NAME`` gets CN ``central-NAME`` (no device may take a name with that prefix,
``topics.is_reserved``), the registry's role ``central-worker``, exactly central's lines in the ACL, and a
folder ``central/workers/NAME/`` holding its key, certificate, the CA and its ready ``[mqtt]`` section.

Revoking a worker is revoking its CN (``kuzet provision revoke central-NAME``): its certificate goes on the CRL
and its ACL entry becomes a deny; a new certificate for the same name can be issued after that.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from kuzet.provisioning.broker_config import WORKER_ROLE
from kuzet.provisioning.broker_update import BrokerUpdate, update_broker
from kuzet.provisioning.ca import CertificateAuthority, cert_pem, key_pem, write_private
from kuzet.provisioning.site import SitePaths, SiteSettings, broker_urls
from kuzet.shared.topics import WORKER_PREFIX, TopicError, check_name

MAX_NAME = 63 - len(WORKER_PREFIX)  # a CN is a topic name: at most 63 characters


class WorkerError(ValueError):
    pass


@dataclass(frozen=True)
class Worker:
    name: str
    identity: str  # the certificate's CN: the broker's username and client id
    folder: Path
    serial: int


def identity(name: str) -> str:
    """``central-<name>``, once ``name`` is a valid worker name (a clear error for the technician if not)."""
    if name.startswith(WORKER_PREFIX):
        raise WorkerError(
            f"central worker {name!r}: give the name without {WORKER_PREFIX!r} "
            f"(its certificate is named {WORKER_PREFIX}<name>, e.g. {name.removeprefix(WORKER_PREFIX)!r})"
        )
    try:
        check_name("central worker", name)
    except TopicError as exc:
        raise WorkerError(f"{exc} (e.g. ingest-1, web, routing-a)") from None
    if len(name) > MAX_NAME:
        raise WorkerError(
            f"central worker {name!r} is too long: at most {MAX_NAME} characters "
            f"(its certificate's name {WORKER_PREFIX}<name> is at most 63)"
        )
    return WORKER_PREFIX + name


def check_names(names: Sequence[str]) -> list[str]:
    """The CNs for ``names``, refused if one is invalid or given twice."""
    identities = [identity(name) for name in names]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise WorkerError(f"central worker {repeated[0]!r} is given more than once")
    return identities


def check_new(ca: CertificateAuthority, names: Sequence[str]) -> list[str]:
    """``check_names``, and refused if one is a worker this site already has."""
    identities = check_names(names)
    for name, cn in zip(names, identities, strict=True):
        if ca.active(cn):
            raise WorkerError(
                f"central worker {name!r} exists (certificate {cn}, folder central/workers/{name}); "
                f"to replace its certificate, revoke it first: kuzet provision revoke {cn}"
            )
    return identities


def issue(
    paths: SitePaths, settings: SiteSettings, ca: CertificateAuthority, names: Sequence[str]
) -> list[Worker]:
    """A key, certificate and ``[mqtt]`` section per new worker; the ACL is the caller's to rewrite."""
    identities = check_new(ca, names)
    issued = ca.issue_many([(cn, WORKER_ROLE) for cn in identities])
    workers = []
    for name, cn, (key, cert) in zip(names, identities, issued, strict=True):
        folder = paths.worker_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        write_private(folder / "worker.key", key_pem(key))
        (folder / "worker.crt").write_bytes(cert_pem(cert))
        shutil.copyfile(paths.ca_cert, folder / "ca.crt")
        (folder / "mqtt.toml").write_text(
            f"# Central worker {name}'s [mqtt] section ({cn}): paste into that process's config "
            "(paths are absolute).\n" + tomli_w.dumps({"mqtt": mqtt_section(paths, settings, name)})
        )
        workers.append(Worker(name, cn, folder, cert.serial_number))
    return workers


def mqtt_section(paths: SitePaths, settings: SiteSettings, name: str) -> dict:
    return {"brokers": broker_urls(settings), "tls": tls_section(paths, name)}


def tls_section(paths: SitePaths, name: str) -> dict:
    folder = paths.worker_dir(name)
    return {
        "ca": str(folder / "ca.crt"),
        "cert": str(folder / "worker.crt"),
        "key": str(folder / "worker.key"),
    }


def add_worker(
    paths: SitePaths,
    settings: SiteSettings,
    name: str,
    *,
    broker_pid: int | None = None,
    reload_command: str | None = None,
) -> tuple[Worker, BrokerUpdate]:
    """A worker for a site that exists: its certificate, the ACL rewritten with its entry, the broker reloaded.
    Until the broker reloads, the worker connects but has none of central's rights (only what the device
    patterns give any CN: its own name's topics, which central refuses as a program's)."""
    ca = CertificateAuthority.load(paths.ca_key, paths.ca_cert, paths.registry)
    (worker,) = issue(paths, settings, ca, [name])
    return worker, update_broker(paths, settings, ca, broker_pid=broker_pid, reload_command=reload_command)
