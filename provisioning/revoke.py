"""Revoking a device (or one of central's workers): its certificates go on the CRL (the broker refuses its
next handshake) and its CN gets a ``deny`` in the ACL (its open connection can neither publish nor receive
once the broker reloads; a worker's central privileges leave the ACL with its certificate).

Nothing of this counts until Mosquitto re-reads both files, so the result says whether it did; revoking an
already revoked device rewrites the files and reloads the broker again (the first attempt may have failed).
"""

from __future__ import annotations

from dataclasses import dataclass

from kuzet.provisioning.broker_update import update_broker
from kuzet.provisioning.ca import CertificateAuthority, Issued
from kuzet.provisioning.site import SitePaths, SiteSettings


@dataclass(frozen=True)
class Revocation:
    device_id: str
    certificates: list[Issued]  # revoked now; empty when they were revoked before
    broker_reloaded: bool
    reload_problem: str = ""  # why the broker was not reloaded: no way configured, or the way failed


def revoke_device(
    paths: SitePaths,
    settings: SiteSettings,
    device_id: str,
    *,
    broker_pid: int | None = None,
    reload_command: str | None = None,
) -> Revocation:
    ca = CertificateAuthority.load(paths.ca_key, paths.ca_cert, paths.registry)
    known = any(row.common_name == device_id for row in ca.issued())
    revoked = ca.revoke(device_id) if ca.active(device_id) or not known else []  # unknown: CAError
    broker = update_broker(paths, settings, ca, broker_pid=broker_pid, reload_command=reload_command)
    return Revocation(device_id, revoked, broker.reloaded, broker.problem)
