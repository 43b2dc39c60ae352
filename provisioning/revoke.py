"""Revoking a device: its certificates go on the CRL (the broker refuses its next handshake) and its CN gets a
``deny`` in the ACL (its open connection can neither publish nor receive once the broker reloads).

Nothing of this counts until Mosquitto re-reads both files, so the result says whether it did; revoking an
already revoked device rewrites the files and reloads the broker again (the first attempt may have failed).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from dataclasses import dataclass

from kuzet.provisioning import broker_config
from kuzet.provisioning.ca import CertificateAuthority, Issued
from kuzet.provisioning.site import SitePaths, SiteSettings


class ReloadError(RuntimeError):
    pass


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
    rewrite_broker_files(paths, settings, ca)
    command = reload_command if reload_command is not None else settings.reload_command
    try:
        reloaded = reload_broker(broker_pid, command)
    except ReloadError as exc:
        return Revocation(device_id, revoked, False, str(exc))
    return Revocation(device_id, revoked, reloaded, "" if reloaded else "no reload command is configured")


def rewrite_broker_files(paths: SitePaths, settings: SiteSettings, ca: CertificateAuthority) -> None:
    denied = [row.common_name for row in ca.issued() if row.revoked_at is not None]
    # A CN stays denied only while it has no active certificate (ids are never reissued, but be exact).
    denied = [cn for cn in denied if not ca.active(cn)]
    broker_config.write_crl(paths, ca.crl_pem(), settings.broker_user)
    broker_config.write_acl(paths, settings, denied)


def reload_broker(pid: int | None, command: str) -> bool:
    """SIGHUP a broker on this machine, or run the site's reload command; False if neither was given."""
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            raise ReloadError(f"no broker process {pid}") from None
        except PermissionError:
            raise ReloadError(f"not allowed to signal process {pid} (run as its user or root)") from None
        return True
    if command:
        try:
            done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReloadError(f"'{command}' could not run: {exc}") from None
        if done.returncode != 0:
            raise ReloadError(f"'{command}' failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return True
    return False


RELOAD_HINT = (
    "The broker must re-read broker/crl.pem and broker/acl: copy them to the broker host if it is not this "
    "machine, then run 'sudo systemctl reload mosquitto' (or send Mosquitto SIGHUP). Until then the revoked "
    "device can still connect."
)
