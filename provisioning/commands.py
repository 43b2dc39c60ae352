"""What each ``kuzet provision`` action does, step by step, with messages for the technician."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path

from kuzet.provisioning import bundle as bundles
from kuzet.provisioning import qr, signing
from kuzet.provisioning.broker_update import RELOAD_HINT
from kuzet.provisioning.bundle import BundleError
from kuzet.provisioning.ca import CAError
from kuzet.provisioning.central_api import CentralClient, CentralError
from kuzet.provisioning.device import DeviceRecord, ProvisionError, provision_device, read_record
from kuzet.provisioning.flash import FlashError
from kuzet.provisioning.signing import SignatureError
from kuzet.provisioning.site import SiteError, SitePaths, SiteSettings, load_settings
from kuzet.provisioning.workers import WorkerError
from kuzet.shared import config
from kuzet.shared.config import ConfigError
from kuzet.shared.topics import WORKER_PREFIX, TopicError

EXPECTED_ERRORS = (
    BundleError,
    CAError,
    CentralError,
    ConfigError,
    FlashError,
    ProvisionError,
    SignatureError,
    SiteError,
    TopicError,
    WorkerError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
)


def _site(args) -> tuple[SitePaths, SiteSettings]:
    root = Path(args.dir).resolve()
    return SitePaths(root), load_settings(root)


def site_init(args: argparse.Namespace) -> int:
    from kuzet.provisioning.site_init import init_site

    settings = config.parse(
        {
            "site": args.site,
            "broker_hosts": args.broker_host,
            "broker_port": args.port,
            "standby_broker_hosts": args.standby_broker_host or [],
            "broker_user": args.broker_user,
            "central_url": args.central,
            "broker_install_dir": args.broker_dir,
            "reload_command": args.reload_command,
        },
        SiteSettings,
        "site-init options",
    )
    paths = init_site(Path(args.dir), settings, listen=args.listen, central_workers=args.central_worker or [])
    print(f"site {settings.site} created in {paths.root}")
    print(f"  CA certificate:     {paths.ca_cert}  (keep {paths.ca_key} and {paths.signing_key} offline)")
    print(f"  broker config:      {paths.mosquitto_conf}  (mosquitto -c {paths.mosquitto_conf})")
    print(f"  central's MQTT:     {paths.central_dir / 'mqtt.toml'}")
    for name in args.central_worker or []:
        print(f"  worker {name}'s MQTT: {paths.worker_dir(name) / 'mqtt.toml'}  ({WORKER_PREFIX}{name})")
    print(f"  central's watchlist key: {paths.central_dir / 'watchlist.toml'}")
    print(f"  update public key:  {paths.signing_public_key}")
    return 0


def _central(args, settings: SiteSettings) -> CentralClient:
    return CentralClient(args.central or settings.central_url, args.token or "")


def device(args: argparse.Namespace) -> int:
    from kuzet.provisioning.image import boot_partition_offset, inject

    paths, settings = _site(args)
    # Check where the bundle goes before a certificate is issued, so a typo leaves no orphan certificate.
    if args.tar and args.tar.exists():
        raise BundleError(f"{args.tar} exists; refusing to overwrite it")
    if args.boot:
        bundles.MountedBoot(args.boot)
    if args.image:
        boot_partition_offset(args.image)
    if args.out and args.out.exists() and any(args.out.iterdir()):
        raise BundleError(f"{args.out} is not empty; choose a new folder")
    record, bundle = provision_device(paths, settings, args.kind, args.name, args.lat, args.lon, args.id)
    if args.tar:
        where = bundles.write_tar(bundle, args.tar)
        warnings = []
    elif args.boot:
        warnings = bundles.write_boot(bundle, bundles.MountedBoot(args.boot))
        where = args.boot / bundles.BUNDLE_DIR
    elif args.image:
        warnings = inject(args.image, bundle)
        where = args.image
    else:
        where = bundles.write_folder(bundle, args.out or paths.devices_dir / record.device_id)
        warnings = []
    # Keep the public part on the laptop so the device can be registered or revoked without its card.
    record_file = paths.devices_dir / f"{record.device_id}.json"
    record_file.parent.mkdir(parents=True, exist_ok=True)
    record_file.write_bytes(bundle.files["device.json"].data)
    print(f"device {record.device_id} ({record.kind}, {record.name!r}) -> {where}")
    for warning in warnings:
        print(f"warning: {warning}")

    label = args.label or paths.devices_dir / f"{record.device_id}-label.png"
    qr.png(record.device_id, record.name, record.site, label)
    print(qr.terminal(record.device_id, record.name, record.site))
    print(f"label: {label}")
    if args.no_register:
        print(
            f"not registered with central; later: kuzet provision register --dir {paths.root} {record_file}"
        )
        return 0
    return _register(args, settings, record, record_file)


def _register(args, settings: SiteSettings, record: DeviceRecord, source: Path) -> int:
    later = f"kuzet provision register --dir {Path(args.dir).resolve()} {source}"
    try:
        _central(args, settings).register(record.api_payload())
    except CentralError as exc:
        print(f"warning: {record.device_id} is NOT registered with central: {exc}", file=sys.stderr)
        print(f"the bundle is complete; when central is reachable, run: {later}", file=sys.stderr)
        return 3
    print(f"registered {record.device_id} with central")
    return 0


def register(args: argparse.Namespace) -> int:
    _, settings = _site(args)
    source = Path(args.bundle)
    if source.suffix == ".json" and source.is_file():
        raw = json.loads(source.read_text())
        record = DeviceRecord(**{k: raw.get(k) for k in DeviceRecord.__dataclass_fields__})
    else:
        record = read_record(bundles.read_bundle(source))
    return _register(args, settings, record, source)


def flash(args: argparse.Namespace) -> int:
    from kuzet.provisioning.flash import check_target
    from kuzet.provisioning.flash import flash as write_image

    if not args.image.is_file():
        raise FlashError(f"{args.image}: no such image file")
    bundle = bundles.read_bundle(args.bundle) if args.bundle else None
    check_target(args.target, args.image)
    if not args.yes:
        answer = input(f"Everything on {args.target} will be erased. Type 'yes' to continue: ")
        if answer.strip().lower() != "yes":
            print("cancelled")
            return 1
    report = write_image(args.image, args.target, bundle)
    print(
        f"wrote {report.bytes_written} bytes to {args.target}; read back and verified (sha256 {report.sha256[:16]}...)"
    )
    if bundle is not None:
        print(f"bundle for {bundle.device_id} injected into the boot partition")
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0


def verify(args: argparse.Namespace) -> int:
    paths, settings = _site(args)
    if args.mqtt or not (args.central or settings.central_url):
        return _verify_mqtt(paths, settings, args.device, args.timeout)
    client = _central(args, settings)
    deadline = time.monotonic() + args.timeout
    print(f"waiting up to {args.timeout:.0f} s for {args.device} to check in with central...")
    told_offline = False
    while True:
        info = client.device(args.device)
        if info.get("online"):
            print(f"{args.device} checked in; online, last seen {info.get('last_seen')}")
            _print_health(info.get("status"))
            return 0
        if info.get("last_seen") and not told_offline:
            # seen before (a re-used card?) but offline now: wait for it to come back
            print(f"{args.device} was last seen at {info['last_seen']} and is offline; waiting...")
            told_offline = True
        if time.monotonic() > deadline:
            print(f"{args.device} has not checked in after {args.timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(2)


def _verify_mqtt(paths: SitePaths, settings: SiteSettings, device_id: str, timeout_s: float) -> int:
    """Only the device holding that certificate can publish under its id (the ACL), so any message there is an
    authenticated check-in. Connects as the technician's tool, never as central: the broker uses the
    certificate's CN as the client id, and a second "central" would disconnect the real one."""
    from kuzet.provisioning.broker_config import TOOL_IDENTITY
    from kuzet.provisioning.site_init import tool_mqtt_section
    from kuzet.shared import messages, topics
    from kuzet.shared.config import MqttSection
    from kuzet.shared.mqtt import Link

    received: queue.Queue = queue.Queue()
    link = Link(MqttSection.model_validate(tool_mqtt_section(paths, settings)), TOOL_IDENTITY)
    # Not availability: it is retained, so it may be left over from an earlier life of the device.
    link.subscribe(
        f"kuzet/v1/{settings.site}/{device_id}/up/#",
        lambda t, p: None if t.endswith("/availability") else received.put((t, p)),
    )
    link.start()
    print(f"waiting up to {timeout_s:.0f} s for {device_id} on {settings.broker_hosts[0]}...")
    try:
        deadline = time.monotonic() + timeout_s
        checked_in = False
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                topic, payload = received.get(timeout=remaining)
            except queue.Empty:
                break
            if not checked_in:
                print(f"{device_id} checked in (authenticated by its certificate) on {topic}")
                checked_in = True
            if topics.parse(topic).kind == "status":
                try:
                    _print_health(json.loads(messages.encode(messages.decode(topic, payload))))
                except messages.InvalidMessage as exc:
                    print(f"its status message breaks the contract: {exc.reason}")
                return 0
        if checked_in:
            print("no status message yet (the device sends one every minute or so)")
            return 0
        print(f"{device_id} has not checked in after {timeout_s:.0f} s", file=sys.stderr)
        return 1
    finally:
        link.stop()


def _print_health(status) -> None:
    if not status:
        print("  no health report yet")
        return
    if isinstance(status, str):
        try:
            status = json.loads(status)
        except ValueError:
            print(f"  status: {status}")
            return
    for key in (
        "kind",
        "software_version",
        "uptime_s",
        "fps_processed",
        "detector_ms",
        "source_state",
        "outbox_depth",
        "disk_free_mb",
        "cpu_temp_c",
        "battery_pct",
        "duty",
    ):
        if status.get(key) is not None:
            print(f"  {key}: {status[key]}")


def revoke(args: argparse.Namespace) -> int:
    """Exit 0 only when the broker re-read its CRL and ACL and central was told; 4 when the broker did not
    (the device can still connect: the one thing a technician must not miss), 3 when only central was not.
    One of central's workers (``central-NAME``) is revoked the same way; central has no device to mark."""
    from kuzet.provisioning.revoke import revoke_device

    paths, settings = _site(args)
    result = revoke_device(
        paths, settings, args.device, broker_pid=args.broker_pid, reload_command=args.reload_command
    )
    worker = args.device.startswith(WORKER_PREFIX)
    what = f"central worker {args.device}" if worker else args.device
    if result.certificates:
        serials = ", ".join(f"{row.serial:x}" for row in result.certificates)
        print(f"revoked {what} (certificate {serials}); CRL and ACL rewritten in {paths.broker_dir}")
    else:
        print(f"{what}'s certificate was already revoked; CRL and ACL rewritten in {paths.broker_dir}")
    if result.broker_reloaded:
        print(f"the broker re-read them: {args.device} is cut off now")
    central_told = worker or _tell_central_revoked(args, settings)
    if not result.broker_reloaded:
        print(
            f"error: the broker has NOT re-read the CRL and ACL ({result.reload_problem}), so {args.device} "
            f"can still connect. {RELOAD_HINT} Or run this command again with --broker-pid or --reload-command.",
            file=sys.stderr,
        )
        return 4
    return 0 if central_told else 3


def _tell_central_revoked(args, settings: SiteSettings) -> bool:
    try:
        _central(args, settings).revoke(args.device)
    except CentralError as exc:
        print(
            f"warning: central was not told ({exc}). "
            f"Run the same 'kuzet provision revoke {args.device}' again when central is reachable.",
            file=sys.stderr,
        )
        return False
    print("marked revoked in central")
    return True


def central_worker(args: argparse.Namespace) -> int:
    """Exit 0 once the broker re-read the ACL; 4 when it did not (the worker's certificate is issued, but the
    broker gives it none of central's topics until it re-reads the ACL)."""
    from kuzet.provisioning.workers import add_worker

    paths, settings = _site(args)
    worker, broker = add_worker(
        paths, settings, args.name, broker_pid=args.broker_pid, reload_command=args.reload_command
    )
    print(
        f"central worker {worker.name}: certificate {worker.identity} ({worker.serial:x}) in {worker.folder}"
    )
    print(f"  its [mqtt] section: {worker.folder / 'mqtt.toml'}")
    print(f"ACL rewritten in {paths.broker_dir} with central's privileges for {worker.identity}")
    if not broker.reloaded:
        print(
            f"error: the broker has NOT re-read the ACL ({broker.problem}), so {worker.identity} gets none of "
            f"central's topics yet. {RELOAD_HINT}",
            file=sys.stderr,
        )
        return 4
    print(f"the broker re-read it: {worker.identity} may connect now")
    return 0


def sign_update(args: argparse.Namespace) -> int:
    paths, _ = _site(args)
    key = signing.load_private_key(paths.signing_key)
    manifest = signing.sign_update(args.source, args.out, key, args.kind, args.version, args.description)
    print(f"signed {args.kind} {args.version}: {len(manifest.files)} file(s) -> {args.out}")
    return 0
