"""Write an OS image to an SD card (or an image file), verify it by reading it back, and inject a device
bundle into its boot partition.

Before a byte is written the target is checked: it must not be mounted (nor any partition of it, nor a loop
device backed by it), must not be a disk this system runs from (through LVM, LUKS, RAID or btrfs too), must not
hold an active swap or be held by device-mapper or RAID, and must not be the image itself. Last, the kernel is
asked: a block device is opened exclusively (O_EXCL), which fails while anything uses it, and stays so while
it is written.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import lzma
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from kuzet.provisioning.bundle import Bundle
from kuzet.provisioning.disks import SYSTEM_MOUNTS, Device, Host, Mount
from kuzet.provisioning.image import inject

CHUNK = 4 * 2**20
# Raspberry Pi OS is published as .img.xz; such images are decompressed while they are written.
DECOMPRESSORS = {".xz": lzma.LZMAFile, ".gz": lambda raw: gzip.GzipFile(fileobj=raw)}


class FlashError(RuntimeError):
    pass


# --- the checks -------------------------------------------------------------------------------------------


def check_target(
    target: Path, image: Path, mounts: Iterable[Mount] | None = None, host: Host | None = None
) -> None:
    """Raise FlashError when writing ``target`` could destroy something in use.

    ``mounts`` replaces the mount table (tests); ``host`` replaces /proc and /sys as a whole.
    """
    host = host or Host()
    if mounts is not None:
        host = replace(host, mounts_override=list(mounts))
    if not target.exists():
        raise FlashError(
            f"{target} does not exist (for an image file, create it first; for a card, check the device name)"
        )
    resolved = target.resolve()
    info = resolved.stat()
    if image.exists() and os.path.samefile(image, resolved):
        raise FlashError(f"{target} is the image itself")
    all_mounts = host.mounts()
    for mount in all_mounts:
        if mount.mount_point == str(resolved) or mount.source == str(resolved):
            if mount.mount_point in SYSTEM_MOUNTS:
                raise FlashError(f"{target} is the system disk (it holds {mount.mount_point}); refusing")
            raise FlashError(f"{target} is mounted at {mount.mount_point}; unmount it first")
    if stat.S_ISREG(info.st_mode):
        _check_file(target, resolved, host)
        return
    if not stat.S_ISBLK(info.st_mode):
        raise FlashError(f"{target} is neither a block device nor a regular file")
    check_block_device(target, (os.major(info.st_rdev), os.minor(info.st_rdev)), host, all_mounts)
    os.close(open_exclusive(target, os.O_RDONLY))


def _check_file(target: Path, resolved: Path, host: Host) -> None:
    for loop, backing in host.loop_backing_files().items():
        if os.path.realpath(backing) == str(resolved):
            raise FlashError(f"{target} is attached to /dev/{loop}; detach it first (losetup -d /dev/{loop})")
    for name, _ in host.swaps():
        if os.path.realpath(name) == str(resolved):
            raise FlashError(f"{target} is an active swap file; refusing")


def check_block_device(target: Path, device: Device, host: Host, mounts: list[Mount]) -> None:
    """A card's block device against what the kernel says: system disk, swap, holders, mounted partitions."""
    disks = host.disks(device) or {f"{device[0]}:{device[1]}"}
    system = host.system_disks()
    swaps = host.swap_disks()
    for disk in sorted(disks):
        if disk in system:
            raise FlashError(f"{target} is the system disk (it holds {system[disk]}); refusing")
        if disk in swaps:
            raise FlashError(f"{target} holds the active swap {swaps[disk]}; refusing (swapoff it first)")
        if held := host.holders(disk):
            raise FlashError(
                f"{target} is in use by {', '.join(held)} (device-mapper: LVM or LUKS, or RAID); "
                "deactivate it first (e.g. 'cryptsetup close', 'vgchange -an', 'mdadm --stop')"
            )
    for mount in mounts:
        if mount.device == device or host.mount_disks(mount) & disks:
            raise FlashError(
                f"{target} has a partition mounted at {mount.mount_point}; unmount it first "
                "(e.g. 'udisksctl unmount')"
            )


def open_exclusive(target: Path, flags: int) -> int:
    """Open a block device with O_EXCL: the kernel refuses while anything mounts or holds it, and while it is
    open so, nothing else can (an automounter, a second flash)."""
    try:
        return os.open(target, flags | os.O_EXCL)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise FlashError(
                f"{target} is in use (the kernel refuses to open it exclusively: mounted, swap, or held by "
                "device-mapper or RAID); refusing"
            ) from None
        raise FlashError(f"cannot open {target}: {exc.strerror}") from None


# --- writing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlashReport:
    bytes_written: int
    sha256: str
    verified: bool
    warnings: list[str]


def flash(
    image: Path,
    target: Path,
    bundle: Bundle | None = None,
    *,
    progress: bool = True,
    mounts: Iterable[Mount] | None = None,
    chunk: int = CHUNK,
) -> FlashReport:
    from tqdm import tqdm  # imported here: the CLI module stays light

    image, target = Path(image), Path(target)
    if not image.is_file():
        raise FlashError(f"{image}: no such image file")
    check_target(target, image, mounts)
    compressed = image.suffix in DECOMPRESSORS
    packed_size = image.stat().st_size
    capacity = _capacity(target)
    if capacity is not None and not compressed and capacity < packed_size:
        raise FlashError(
            f"{target} holds {capacity / 2**30:.1f} GiB; the image needs {packed_size / 2**30:.1f} GiB"
        )

    digest = hashlib.sha256()
    size = 0
    # Progress counts the image file's bytes read, so a compressed image shows a true percentage too.
    with (
        open(image, "rb") as raw,
        DECOMPRESSORS.get(image.suffix, _plain)(raw) as source,
        _open_target(target) as sink,
        tqdm(total=packed_size, unit="B", unit_scale=True, desc="write", disable=not progress) as bar,
    ):
        try:
            while block := source.read(chunk):
                digest.update(block)
                sink.write(block)
                size += len(block)
                bar.update(raw.tell() - bar.n)
            sink.flush()
            os.fsync(sink.fileno())
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise FlashError(f"writing {target} failed after {size / 2**20:.0f} MiB: {exc}") from None
        # Read back from the medium, not from the page cache.
        os.posix_fadvise(sink.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    expected = digest.hexdigest()
    actual = _read_back(target, size, chunk, progress)
    if actual != expected:
        raise FlashError(
            f"verification failed: {target} reads back differently from {image} (a failing card or reader?)"
        )
    warnings = []
    if bundle is not None:
        warnings = inject(target, bundle)
        with open(target, "r+b") as sink:
            os.fsync(sink.fileno())
    return FlashReport(size, expected, True, warnings)


@contextlib.contextmanager
def _plain(raw):
    yield raw


def _open_target(target: Path):
    """The target for writing: a block device exclusively (see ``open_exclusive``), a file as it is."""
    if stat.S_ISBLK(target.resolve().stat().st_mode):
        return os.fdopen(open_exclusive(target, os.O_RDWR), "r+b")
    return open(target, "r+b")


def _read_back(target: Path, size: int, chunk: int, progress: bool) -> str:
    from tqdm import tqdm

    digest = hashlib.sha256()
    remaining = size
    with (
        open(target, "rb") as handle,
        tqdm(total=size, unit="B", unit_scale=True, desc="verify", disable=not progress) as bar,
    ):
        while remaining > 0:
            block = handle.read(min(chunk, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
            bar.update(len(block))
    return digest.hexdigest() if remaining == 0 else "short read"


def _capacity(target: Path) -> int | None:
    info = target.resolve().stat()
    if not stat.S_ISBLK(info.st_mode):
        return None  # an image file grows as needed
    with open(target, "rb") as handle:
        return handle.seek(0, os.SEEK_END)
