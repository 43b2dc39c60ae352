"""Build small but real disk images for tests: an MBR with one FAT32 partition, like a Raspberry Pi OS image's
boot partition, made with pyfatfs (no root, no mkfs.vfat needed)."""

from __future__ import annotations

import struct
from pathlib import Path

from pyfatfs.PyFat import PyFat
from pyfatfs.PyFatFS import PyFatFS

START_LBA = 2048


def build_image(
    path: Path, boot_mb: int = 40, tail_mb: int = 4, cmdline: str | None = "console=tty1 rootwait"
) -> Path:
    boot_sectors = boot_mb * 2048
    total = (START_LBA + boot_sectors) * 512 + tail_mb * 2**20
    with open(path, "wb") as handle:
        handle.truncate(total)
        entry = struct.pack("<B3sB3sII", 0x00, b"\0\0\0", 0x0C, b"\0\0\0", START_LBA, boot_sectors)
        handle.seek(446)
        handle.write(entry)
        handle.seek(510)
        handle.write(b"\x55\xaa")
        handle.seek(total - tail_mb * 2**20)  # a stand-in for the root partition's bytes
        handle.write(b"ROOTFS" * 1000)
    fat = PyFat(offset=START_LBA * 512)
    fat.mkfs(str(path), PyFat.FAT_TYPE_FAT32, size=boot_sectors * 512, label="BOOTFS")
    fat.close()
    if cmdline is not None:
        fs = PyFatFS(str(path), offset=START_LBA * 512)
        fs.writetext("cmdline.txt", cmdline + "\n")
        fs.writetext("config.txt", "arm_64bit=1\n")
        fs.close()
    return path
