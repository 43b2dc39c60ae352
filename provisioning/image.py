"""Raspberry Pi OS image files (and written cards): find the FAT boot partition in the MBR and read and write
files in it without root and without mounting, through the pure-Python FAT driver ``pyfatfs``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from kuzet.provisioning.bundle import Bundle, BundleError, write_boot

SECTOR = 512
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
GPT_PROTECTIVE = 0xEE


class ImageError(BundleError):
    pass


def boot_partition_offset(path: Path) -> int:
    """Byte offset of the first FAT partition listed in the MBR of an image file or a disk."""
    if Path(path).suffix in (".xz", ".gz", ".zip"):
        raise ImageError(
            f"{path} is compressed: give it to 'kuzet provision flash --bundle' (which decompresses while writing), "
            "or decompress it first (xz -dk)"
        )
    with open(path, "rb") as handle:
        mbr = handle.read(SECTOR)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise ImageError(f"{path}: no MBR partition table (is this a Raspberry Pi OS image?)")
    for index in range(4):
        entry = mbr[446 + 16 * index : 446 + 16 * (index + 1)]
        kind = entry[4]
        start_lba, sectors = struct.unpack("<II", entry[8:16])
        if kind == GPT_PROTECTIVE:
            raise ImageError(f"{path}: a GPT disk; Raspberry Pi OS images use an MBR")
        if kind in FAT_TYPES and sectors > 0:
            return start_lba * SECTOR
    raise ImageError(
        f"{path}: no FAT partition in the MBR (a Raspberry Pi OS image has its boot partition first)"
    )


class ImageBoot:
    """The boot partition inside an image file or a written card, opened with pyfatfs."""

    def __init__(self, path: Path):
        from pyfatfs.PyFatFS import PyFatFS  # imported here: only image work needs it

        self.path = Path(path)
        offset = self.offset = boot_partition_offset(self.path)
        try:
            self.fs = PyFatFS(str(self.path), offset=offset, utc=True)
        except Exception as exc:  # pyfatfs raises its own and OS errors for a damaged partition
            raise ImageError(f"{path}: cannot open the FAT boot partition at byte {offset}: {exc}") from None

    def read(self, name: str) -> bytes | None:
        return self.fs.readbytes(name) if self.fs.isfile(name) else None

    def write(self, name: str, data: bytes) -> None:
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        if parent:
            self.fs.makedirs(parent, recreate=True)
        if self.fs.exists(name):
            # pyfatfs 1.1 corrupts the cluster chain when it truncates a file of several clusters in place
            self.fs.remove(name)
        self.fs.writebytes(name, data)

    def close(self) -> None:
        fat32 = self.fs.fs.fat_type == 32
        self.fs.close()
        if fat32:
            invalidate_free_count(self.path, self.offset)

    def __enter__(self) -> ImageBoot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def invalidate_free_count(path: Path, offset: int) -> None:
    """Mark FAT32's FSInfo free-cluster count and next-free hint "unknown" (0xFFFFFFFF).

    pyfatfs allocates clusters without updating FSInfo, so the count it leaves is wrong; "unknown" is valid
    and makes the kernel (and fsck.fat) count free clusters themselves.
    """
    with open(path, "r+b") as handle:
        handle.seek(offset)
        boot_sector = handle.read(SECTOR)
        (fsinfo_sector,) = struct.unpack_from("<H", boot_sector, 48)
        if fsinfo_sector in (0, 0xFFFF):
            return
        handle.seek(offset + fsinfo_sector * SECTOR)
        fsinfo = handle.read(SECTOR)
        if fsinfo[0:4] != b"RRaA" or fsinfo[484:488] != b"rrAa":
            return  # no valid FSInfo: nothing to correct
        handle.seek(offset + fsinfo_sector * SECTOR + 488)
        handle.write(b"\xff" * 8)
        handle.flush()
        os.fsync(handle.fileno())


def inject(image: Path, bundle: Bundle, boot_mount: str | None = None) -> list[str]:
    """Write the bundle and its first-boot hook into the image's boot partition; return warnings."""
    with ImageBoot(image) as boot:
        return write_boot(bundle, boot, *([boot_mount] if boot_mount else []))
