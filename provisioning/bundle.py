"""A device's provisioning bundle and the places it can be written: a folder, a tar file, or the boot
partition of a Raspberry Pi OS card (a mounted SD card, or an image file through ``provisioning.image``).

On a boot partition the bundle goes to ``kuzet/`` with ``kuzet-firstboot.sh``, which ``cmdline.txt`` runs once
on first boot (``systemd.run=``, as Raspberry Pi Imager does): it installs the files to ``/etc/kuzet`` with the
key readable by root and the agent's ``kuzet`` account alone, installs and enables the agent's systemd unit,
then deletes the bundle from the FAT partition (which has no file permissions).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

BUNDLE_DIR = "kuzet"
FIRSTBOOT = "kuzet-firstboot.sh"
# Raspberry Pi OS Bookworm mounts the boot partition here (older releases: /boot).
DEFAULT_BOOT_MOUNT = "/boot/firmware"
_CMDLINE_RUN = (
    "systemd.run={mount}/" + FIRSTBOOT + " systemd.run_success_action=reboot "
    "systemd.unit=kernel-command-line.target"
)

FIRSTBOOT_SCRIPT = """#!/bin/bash
# Kuzet first boot: install the device bundle from the boot partition, create the agent's account, install and
# enable the agent's systemd unit, then remove the bundle from the boot partition (the FAT boot partition
# cannot protect the device key). Runs once, from cmdline.txt; the reboot that follows starts the agent.
# KUZET_ROOT (empty on a device) installs into another root folder instead, e.g. an image mounted for a test.
set -eu
BOOT="$(dirname "$(readlink -f "$0")")"
ROOT="${KUZET_ROOT:-}"
ETC="$ROOT/etc/kuzet"
if ! grep -q '^kuzet:' "$ROOT/etc/passwd"; then
    useradd ${ROOT:+--root "$ROOT"} --system --user-group --no-create-home --home-dir /var/lib/kuzet \\
        --shell /usr/sbin/nologin kuzet
fi
GID="$(awk -F: '$1 == "kuzet" { print $3 }' "$ROOT/etc/group")"
install -d -m 0755 "$ETC"
cp -r "$BOOT/kuzet/." "$ETC/"
chown -R 0:0 "$ETC"
chmod 0644 "$ETC"/*
chown "0:$GID" "$ETC/device.key"
chmod 0640 "$ETC/device.key"  # readable by root and the agent's account only
install -d -m 0755 "$ROOT/etc/systemd/system"
for unit in "$ETC"/*.service; do
    [ -e "$unit" ] || continue
    install -m 0644 "$unit" "$ROOT/etc/systemd/system/"
    rm -f "$unit"
    systemctl ${ROOT:+--root="$ROOT"} enable "$(basename "$unit")"
done
[ -x "$ROOT/opt/kuzet/bin/kuzet" ] || echo "kuzet-firstboot: /opt/kuzet/bin/kuzet is missing: install Kuzet there" >&2
sync
rm -rf "$BOOT/kuzet"
sed -i 's| systemd.run=[^ ]*kuzet-firstboot.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target||' "$BOOT/cmdline.txt"
rm -f "$BOOT/kuzet-firstboot.sh"
sync
exit 0
"""


class BundleError(RuntimeError):
    pass


@dataclass(frozen=True)
class BundleFile:
    data: bytes
    secret: bool = False

    @property
    def mode(self) -> int:
        return 0o600 if self.secret else 0o644


@dataclass
class Bundle:
    device_id: str
    files: dict[str, BundleFile] = field(default_factory=dict)

    def add(self, name: str, data: bytes, secret: bool = False) -> None:
        self.files[name] = BundleFile(data, secret)


# --- writing ----------------------------------------------------------------------------------------------


def write_folder(bundle: Bundle, folder: Path) -> Path:
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise BundleError(f"{folder} is not empty; choose a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for name, item in bundle.files.items():
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, item.mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(item.data)
    return folder


def write_tar(bundle: Bundle, path: Path) -> Path:
    path = Path(path)
    if path.exists():
        raise BundleError(f"{path} exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the device key
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, item in bundle.files.items():
            info = tarfile.TarInfo(f"{BUNDLE_DIR}/{name}")
            info.size = len(item.data)
            info.mode = item.mode
            tar.addfile(info, io.BytesIO(item.data))
    return path


class BootPartition(Protocol):
    """A FAT boot partition, mounted or inside an image file."""

    def read(self, name: str) -> bytes | None: ...

    def write(self, name: str, data: bytes) -> None: ...


def write_boot(bundle: Bundle, boot: BootPartition, boot_mount: str = DEFAULT_BOOT_MOUNT) -> list[str]:
    """Put the bundle and the first-boot hook on a boot partition; return warnings for the technician."""
    warnings = []
    for name, item in bundle.files.items():
        boot.write(f"{BUNDLE_DIR}/{name}", item.data)
    boot.write(FIRSTBOOT, FIRSTBOOT_SCRIPT.encode())
    cmdline = boot.read("cmdline.txt")
    hook = _CMDLINE_RUN.format(mount=boot_mount.rstrip("/"))
    if cmdline is None:
        warnings.append(
            "no cmdline.txt on this partition: is it a Raspberry Pi OS boot partition? The bundle is in "
            f"{BUNDLE_DIR}/; run {FIRSTBOOT} on the device as root to install it"
        )
    elif FIRSTBOOT in cmdline.decode(errors="replace"):
        pass  # already hooked (the card is being re-provisioned)
    elif "systemd.run=" in cmdline.decode(errors="replace"):
        warnings.append(
            "cmdline.txt already runs another first-boot script (Raspberry Pi Imager's settings?); run "
            f"{boot_mount}/{FIRSTBOOT} as root on the device after its first boot to install the bundle"
        )
    else:
        line = cmdline.decode().strip()
        boot.write("cmdline.txt", f"{line} {hook}\n".encode())
    return warnings


class MountedBoot:
    """A boot partition mounted on this laptop (an SD card in a reader)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BundleError(f"{root} is not a folder; give the mount point of the SD card's boot partition")

    def read(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def write(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


# --- reading back (for 'kuzet provision register') -----------------------------------------------------------


def read_bundle(source: Path) -> Bundle:
    """Read a bundle from a folder, a tar file, or a boot partition's ``kuzet/`` folder."""
    source = Path(source)
    if source.is_dir():
        folder = source / BUNDLE_DIR if (source / BUNDLE_DIR / "device.json").exists() else source
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    elif tarfile.is_tarfile(source):
        with tarfile.open(source, "r:*") as tar:
            files = {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    else:
        raise BundleError(f"{source} is neither a bundle folder nor a bundle tar file")
    if "device.json" not in files:
        raise BundleError(f"{source} has no device.json: not a Kuzet device bundle")
    device_id = json.loads(files["device.json"])["device_id"]
    bundle = Bundle(device_id)
    for name, data in files.items():
        bundle.add(name, data, secret=name == "device.key")
    return bundle
