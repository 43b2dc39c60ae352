"""Write an OS image to an SD card (or an image file), verify it by reading it back, and inject a device
bundle into its boot partition.

Before a byte is written the target is checked: it must not be mounted (nor any partition of it, nor a loop
device backed by it), must not be the disk this system runs from, and must not be the image itself.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import lzma
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from provisioning.bundle import Bundle
from provisioning.image import inject

CHUNK = 4 * 2**20
# Raspberry Pi OS is published as .img.xz; such images are decompressed while they are written.
DECOMPRESSORS = {".xz": lzma.LZMAFile, ".gz": lambda raw: gzip.GzipFile(fileobj=raw)}
MOUNTINFO = Path("/proc/self/mountinfo")
SYS_BLOCK = Path("/sys/class/block")
# A disk holding any of these is the one this system runs from.
SYSTEM_MOUNTS = ("/", "/boot", "/boot/firmware", "/usr", "/var", "/home")


class FlashError(RuntimeError):
    pass


# --- what is mounted --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    device: tuple[int, int]  # major, minor of the mounted filesystem
    mount_point: str
    source: str


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
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


def read_mounts() -> list[Mount]:
    return parse_mountinfo(MOUNTINFO.read_text())


# --- block devices ----------------------------------------------------------------------------------------


def whole_disk(device: tuple[int, int]) -> str | None:
    """The kernel name of the disk a block device is or belongs to ('sda' for sda2), or None."""
    node = Path(f"/sys/dev/block/{device[0]}:{device[1]}")
    if not node.exists():
        return None
    real = node.resolve()
    return real.parent.name if (real / "partition").exists() else real.name


def loop_backing_files() -> dict[str, str]:
    """Loop device name -> the file it is backed by."""
    found = {}
    for backing in SYS_BLOCK.glob("loop*/loop/backing_file"):
        found[backing.parent.parent.name] = backing.read_text().strip()
    return found


# --- the checks -------------------------------------------------------------------------------------------


def check_target(target: Path, image: Path, mounts: Iterable[Mount] | None = None) -> None:
    """Raise FlashError when writing ``target`` could destroy something in use."""
    mounts = list(read_mounts() if mounts is None else mounts)
    if not target.exists():
        raise FlashError(
            f"{target} does not exist (for an image file, create it first; for a card, check the device name)"
        )
    resolved = target.resolve()
    info = resolved.stat()
    if image.exists() and os.path.samefile(image, resolved):
        raise FlashError(f"{target} is the image itself")
    for mount in mounts:
        if mount.mount_point == str(resolved) or mount.source == str(resolved):
            if mount.mount_point in SYSTEM_MOUNTS:
                raise FlashError(f"{target} is the system disk (it holds {mount.mount_point}); refusing")
            raise FlashError(f"{target} is mounted at {mount.mount_point}; unmount it first")
    if stat.S_ISREG(info.st_mode):
        for loop, backing in loop_backing_files().items():
            if os.path.realpath(backing) == str(resolved):
                raise FlashError(
                    f"{target} is attached to /dev/{loop}; detach it first (losetup -d /dev/{loop})"
                )
        return
    if not stat.S_ISBLK(info.st_mode):
        raise FlashError(f"{target} is neither a block device nor a regular file")
    device = (os.major(info.st_rdev), os.minor(info.st_rdev))
    disk = whole_disk(device)
    for mount in mounts:
        on_target = mount.device == device or (disk is not None and whole_disk(mount.device) == disk)
        if not on_target:
            continue
        if mount.mount_point in SYSTEM_MOUNTS:
            raise FlashError(f"{target} is the system disk (it holds {mount.mount_point}); refusing")
        raise FlashError(
            f"{target} has a partition mounted at {mount.mount_point}; unmount it first (e.g. 'udisksctl unmount')"
        )


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
        open(target, "r+b") as sink,
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
