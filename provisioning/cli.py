"""``kuzet provision``: the technician's commands. Argparse only at import time; the work is imported in ``run``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_SITE_DIR = os.environ.get("KUZET_SITE_DIR", "kuzet-site")


def _site_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=DEFAULT_SITE_DIR, help="the site folder (default: $KUZET_SITE_DIR or ./kuzet-site)"
    )


def _central_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--central", help="central's URL (default: central_url in site.toml)")
    parser.add_argument("--token", default=os.environ.get("KUZET_TOKEN"), help="API token (or $KUZET_TOKEN)")


HELP = "site CA, device identities, SD cards, updates and revocation"
EXTRA = "provisioning"  # what `pip install kuzet[...]` adds for this command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser(
        "site-init", help="create the site CA, broker TLS config and ACL, central's keys"
    )
    _site_arg(init)
    init.add_argument("--site", required=True, help="site name, e.g. pavlodar")
    init.add_argument(
        "--broker-host",
        action="append",
        required=True,
        help="a name or IP devices use to reach the broker (repeat for several; the first goes in device configs)",
    )
    init.add_argument(
        "--standby-broker-host",
        action="append",
        help="a standby broker's name, tried after the primary (repeat for several, in order; docs/brokers.md)",
    )
    init.add_argument("--port", type=int, default=8883, help="the broker's TLS port (default 8883)")
    init.add_argument("--listen", default="", help="address the broker listens on (default: all)")
    init.add_argument(
        "--broker-user", default="mosquitto", help="account Mosquitto runs as (default mosquitto)"
    )
    init.add_argument(
        "--broker-dir",
        default="",
        help="where broker/ will be copied on the broker host, e.g. /etc/mosquitto/kuzet (default: this folder)",
    )
    init.add_argument("--central", default="", help="central's URL, e.g. https://kuzet.example:8080")
    init.add_argument(
        "--reload-command",
        default="",
        help="run after a revocation to make the broker re-read its CRL and ACL, e.g. 'systemctl reload mosquitto'",
    )
    init.add_argument(
        "--central-worker",
        action="append",
        metavar="NAME",
        help="also a certificate for this process of a split central, CN central-NAME (repeat; docs/scale.md)",
    )

    device = actions.add_parser(
        "device", help="create a device identity and its bundle; register it with central"
    )
    _site_arg(device)
    device.add_argument("--kind", required=True, choices=["camera", "badge"])
    device.add_argument(
        "--name", required=True, help="a name people recognise, e.g. 'Toraigyrov St / Lomov St'"
    )
    device.add_argument("--lat", type=float)
    device.add_argument("--lon", type=float)
    device.add_argument("--id", help="the device id (default: generated, e.g. cam-1f2e3d4c)")
    out = device.add_mutually_exclusive_group()
    out.add_argument(
        "--out", type=Path, help="write the bundle to this new folder (default: SITE/devices/ID)"
    )
    out.add_argument("--tar", type=Path, help="write the bundle to this tar.gz file")
    out.add_argument("--boot", type=Path, help="the mount point of an SD card's boot partition")
    out.add_argument("--image", type=Path, help="a Raspberry Pi OS image file to put the bundle into")
    device.add_argument("--label", type=Path, help="the QR label PNG (default: next to the bundle)")
    device.add_argument("--no-register", action="store_true", help="do not contact central now")
    _central_args(device)

    flash = actions.add_parser("flash", help="write an OS image to a card, verify it, inject a bundle")
    flash.add_argument("--image", required=True, type=Path)
    flash.add_argument(
        "--target", required=True, type=Path, help="the card's device (e.g. /dev/sdb) or an image file"
    )
    flash.add_argument("--bundle", type=Path, help="a bundle folder or tar from 'kuzet provision device'")
    flash.add_argument("--yes", action="store_true", help="do not ask before overwriting the target")

    verify = actions.add_parser(
        "verify", help="wait for a device's first authenticated check-in; show its health"
    )
    _site_arg(verify)
    verify.add_argument("device")
    verify.add_argument("--timeout", type=float, default=300, help="seconds to wait (default 300)")
    verify.add_argument("--mqtt", action="store_true", help="listen on the broker with central's certificate")
    _central_args(verify)

    revoke = actions.add_parser(
        "revoke", help="revoke a device's certificate and mark it revoked in central (or a central worker's)"
    )
    _site_arg(revoke)
    revoke.add_argument("device", help="the device id, or central-NAME for one of central's workers")
    revoke.add_argument("--broker-pid", type=int, help="SIGHUP this Mosquitto process (on this machine)")
    revoke.add_argument("--reload-command", help="overrides reload_command in site.toml")
    _central_args(revoke)

    worker = actions.add_parser(
        "central-worker",
        help="add a process of a split central: its certificate, central's ACL entry, the broker reloaded",
    )
    _site_arg(worker)
    worker.add_argument("name", help="the worker's name, e.g. ingest-host3: its certificate is central-NAME")
    worker.add_argument("--broker-pid", type=int, help="SIGHUP this Mosquitto process (on this machine)")
    worker.add_argument("--reload-command", help="overrides reload_command in site.toml")

    register = actions.add_parser("register", help="register a provisioned device with central (e.g. later)")
    _site_arg(register)
    register.add_argument("bundle", type=Path, help="the bundle folder, tar, or the SD card's boot partition")
    _central_args(register)

    sign = actions.add_parser("sign-update", help="sign a model or configuration bundle with the site key")
    _site_arg(sign)
    sign.add_argument("source", type=Path, help="a file or folder to ship")
    sign.add_argument("--kind", required=True, choices=["model", "config"])
    sign.add_argument("--version", required=True, help="e.g. 2026.11.21-1")
    sign.add_argument("--description", default="")
    sign.add_argument("--out", type=Path, required=True, help="the signed bundle (.tar) to write")


def run(args: argparse.Namespace) -> int:
    from kuzet.provisioning import commands

    try:
        return getattr(commands, args.action.replace("-", "_"))(args)
    except commands.EXPECTED_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
