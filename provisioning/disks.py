"""Which disks this machine runs from, and what else holds a disk, as the kernel sees it (/proc and /sys).

A mount names its filesystem's device number, but that is not always a disk: btrfs reports an anonymous
number (0:45) while its source is /dev/vda2, and a root on LVM or LUKS sits on /dev/mapper/... (253:0), a
device-mapper device whose real disks are its ``slaves`` in sysfs. So each mount's device number *and* its
source are resolved, through partitions and slaves, to whole disks. Swap (``/proc/swaps``) counts as in use,
and so does a disk with ``holders`` (device-mapper or RAID built on it).

``Host`` reads the real /proc and /sys; tests give it made-up trees and device numbers.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# A disk holding any of these is the one this system runs from.
SYSTEM_MOUNTS = ("/", "/boot", "/boot/firmware", "/usr", "/var", "/home")

Device = tuple[int, int]  # major, minor


@dataclass(frozen=True)
class Mount:
    device: Device  # major, minor of the mounted filesystem (anonymous for btrfs, overlay...)
    mount_point: str
    source: str


def _unescape(text: str) -> str:
    # mountinfo and /proc/swaps escape space, tab, newline and backslash as \ooo
    return text.encode().decode("unicode_escape") if "\\" in text else text


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        major, minor = (int(x) for x in fields[2].split(":"))
        mounts.append(Mount((major, minor), _unescape(fields[4]), _unescape(fields[sep + 2])))
    return mounts


def parse_swaps(text: str) -> list[tuple[str, str]]:
    """(file name, "partition" | "file") for every active swap area."""
    rows = []
    for line in text.splitlines()[1:]:  # the first line is the header
        fields = line.split()
        if len(fields) >= 2:
            rows.append((_unescape(fields[0]), fields[1]))
    return rows


@dataclass
class Host:
    sys_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    mounts_override: list[Mount] | None = field(default=None)

    # --- what the kernel says ---------------------------------------------------------------------------

    def mounts(self) -> list[Mount]:
        if self.mounts_override is not None:
            return self.mounts_override
        return parse_mountinfo((self.proc_root / "self" / "mountinfo").read_text())

    def swaps(self) -> list[tuple[str, str]]:
        path = self.proc_root / "swaps"
        return parse_swaps(path.read_text()) if path.exists() else []

    def block_device(self, path: str) -> Device | None:
        """The device number of a block device node (a mount's or a swap partition's source), else None."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        return (os.major(info.st_rdev), os.minor(info.st_rdev)) if stat.S_ISBLK(info.st_mode) else None

    def filesystem_of(self, path: str) -> Device | None:
        """The device number of the filesystem holding a file (a swap file)."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        return (os.major(info.st_dev), os.minor(info.st_dev))

    # --- sysfs ------------------------------------------------------------------------------------------

    def _node(self, device: Device) -> Path | None:
        node = self.sys_root / "dev" / "block" / f"{device[0]}:{device[1]}"
        return node.resolve() if node.exists() else None

    def disks(self, device: Device) -> set[str]:
        """Kernel names of the whole disks a device lives on: sda for sda2, the disks under dm-0 or md0."""
        node = self._node(device)
        return self._disks_of_node(node, depth=0) if node is not None else set()

    def _disks_of_node(self, node: Path, depth: int) -> set[str]:
        slaves = sorted((node / "slaves").iterdir()) if (node / "slaves").is_dir() else []
        if slaves and depth < 8:  # device-mapper, RAID, LUKS over LVM...: the disks are underneath
            found: set[str] = set()
            for slave in slaves:
                found |= self._disks_of_node(slave.resolve(), depth + 1)
            return found
        return {node.parent.name if (node / "partition").exists() else node.name}

    def holders(self, disk: str) -> list[str]:
        """Devices built on a disk or on one of its partitions (dm-0 for LVM/LUKS, md0 for RAID)."""
        base = self.sys_root / "block" / disk
        if not base.exists():
            return []
        base = base.resolve()
        places = [base] + [p for p in base.iterdir() if (p / "partition").exists()]
        return sorted(
            {
                h.name
                for place in places
                if (place / "holders").is_dir()
                for h in (place / "holders").iterdir()
            }
        )

    def loop_backing_files(self) -> dict[str, str]:
        """Loop device name -> the file it is backed by."""
        found = {}
        for backing in (self.sys_root / "class" / "block").glob("loop*/loop/backing_file"):
            found[backing.parent.parent.name] = backing.read_text().strip()
        return found

    # --- conclusions ------------------------------------------------------------------------------------

    def mount_disks(self, mount: Mount) -> set[str]:
        """The disks under a mount: by its device number, and by its source when that is a block device."""
        disks = self.disks(mount.device)
        if mount.source.startswith("/"):
            source = self.block_device(mount.source)
            if source is not None:
                disks |= self.disks(source)
        return disks

    def swap_disks(self) -> dict[str, str]:
        """Disk -> the swap area on it (a partition, or the filesystem holding a swap file)."""
        found = {}
        for name, kind in self.swaps():
            device = self.block_device(name) if kind == "partition" else self.filesystem_of(name)
            for disk in self.disks(device) if device is not None else ():
                found[disk] = name
        return found

    def system_disks(self) -> dict[str, str]:
        """Disk -> the system mount point it holds."""
        found: dict[str, str] = {}
        for mount in self.mounts():
            if mount.mount_point in SYSTEM_MOUNTS:
                for disk in self.mount_disks(mount):
                    found.setdefault(disk, f"{mount.mount_point} from {mount.source}")
        return found
