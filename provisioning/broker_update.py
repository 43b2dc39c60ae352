"""Bringing the broker up to date with the site's CA: the CRL and the ACL rewritten from the CA's registry
(``ca/issued.json``), then the broker told to re-read them. Revoking a device and adding a central worker
both end here, so every rewrite of the ACL keeps what the registry holds: each active worker's entry, each
revoked name's deny.

Mosquitto re-reads both files only at start and on SIGHUP: the result says whether it did.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from dataclasses import dataclass

from kuzet.provisioning import broker_config
from kuzet.provisioning.ca import CertificateAuthority
from kuzet.provisioning.site import SitePaths, SiteSettings


class ReloadError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerUpdate:
    reloaded: bool
    problem: str = ""  # why the broker was not reloaded: no way configured, or the way failed


def update_broker(
    paths: SitePaths,
    settings: SiteSettings,
    ca: CertificateAuthority,
    *,
    broker_pid: int | None = None,
    reload_command: str | None = None,
) -> BrokerUpdate:
    """Rewrite the CRL and the ACL, then reload the broker (``reload_command`` overrides the site's)."""
    rewrite_broker_files(paths, settings, ca)
    command = reload_command if reload_command is not None else settings.reload_command
    try:
        reloaded = reload_broker(broker_pid, command)
    except ReloadError as exc:
        return BrokerUpdate(False, str(exc))
    return BrokerUpdate(reloaded, "" if reloaded else "no reload command is configured")


def rewrite_broker_files(paths: SitePaths, settings: SiteSettings, ca: CertificateAuthority) -> None:
    rows = ca.issued()
    active = {row.common_name for row in rows if row.revoked_at is None}
    # A CN stays denied only while it has no active certificate (a worker may be issued a new one).
    denied = {row.common_name for row in rows if row.revoked_at is not None} - active
    workers = {row.common_name for row in rows if row.role == broker_config.WORKER_ROLE} & active
    broker_config.write_crl(paths, ca.crl_pem(), settings.broker_user)
    broker_config.write_acl(paths, settings, sorted(workers), sorted(denied))


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
    "machine, then run 'sudo systemctl reload mosquitto' (or send Mosquitto SIGHUP)."
)
