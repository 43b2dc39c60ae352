"""Flashing onto loop files (regular files, never a real disk) with read-back verification, refusal of mounted
and system targets, and bundle injection into a real FAT partition inside an image file.

Which disks are in use is judged from /proc and /sys: those are made up here (btrfs, LVM/LUKS, swap, RAID),
so no real disk is ever opened for writing."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.fat_image import START_LBA, build_image

from kuzet.provisioning.bundle import FIRSTBOOT, Bundle, read_bundle, write_tar
from kuzet.provisioning.disks import Host, parse_mountinfo
from kuzet.provisioning.flash import FlashError, check_block_device, check_target, flash
from kuzet.provisioning.image import ImageBoot, ImageError, boot_partition_offset, inject


def sample_bundle() -> Bundle:
    bundle = Bundle("cam-0a1b2c3d")
    bundle.add("config.toml", b'[device]\nid = "cam-0a1b2c3d"\n')
    bundle.add("device.key", b"-----BEGIN PRIVATE KEY-----\nsecret\n", secret=True)
    bundle.add(
        "device.json", b'{"device_id": "cam-0a1b2c3d", "kind": "camera", "name": "x", "site": "pavlodar"}'
    )
    return bundle


def test_bundle_is_injected_into_the_fat_boot_partition_of_an_image(tmp_path):
    image = build_image(tmp_path / "raspios.img")
    assert boot_partition_offset(image) == START_LBA * 512
    warnings = inject(image, sample_bundle())
    assert warnings == []
    with ImageBoot(image) as boot:  # reopened from the bytes on disk
        assert boot.read("kuzet/config.toml") == b'[device]\nid = "cam-0a1b2c3d"\n'
        assert boot.read("kuzet/device.key").startswith(b"-----BEGIN PRIVATE KEY")
        assert boot.read(FIRSTBOOT).startswith(b"#!/bin/bash")
        cmdline = boot.read("cmdline.txt").decode()
        assert boot.read("config.txt") == b"arm_64bit=1\n"  # the rest of the partition is intact
    assert cmdline.startswith("console=tty1 rootwait systemd.run=/boot/firmware/kuzet-firstboot.sh")
    assert cmdline.count("\n") == 1  # cmdline.txt must stay one line
    # injecting again (re-provisioning a card) does not hook first boot twice
    inject(image, sample_bundle())
    with ImageBoot(image) as boot:
        assert boot.read("cmdline.txt").decode().count("kuzet-firstboot.sh") == 1


def test_injected_partition_passes_fsck(tmp_path):
    fsck = shutil.which("fsck.fat") or shutil.which("fsck.vfat")
    if fsck is None:
        pytest.skip("fsck.fat (dosfstools) is not installed")
    image = build_image(tmp_path / "raspios.img")
    bundle = sample_bundle()
    bundle.add("model.tflite", os.urandom(300_000))  # several clusters
    inject(image, bundle)
    inject(image, bundle)  # rewriting existing multi-cluster files is where pyfatfs went wrong
    partition = tmp_path / "boot.part"
    with open(image, "rb") as source:
        source.seek(START_LBA * 512)
        partition.write_bytes(source.read(40 * 2**20))
    done = subprocess.run([fsck, "-n", str(partition)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrong" not in done.stdout and "orrect" not in done.stdout, done.stdout


def test_image_without_mbr_is_refused(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ImageError, match="no MBR"):
        inject(junk, sample_bundle())


def test_flash_writes_verifies_and_injects_into_a_loop_file(tmp_path):
    image = build_image(tmp_path / "raspios.img")
    target = tmp_path / "sdcard.bin"
    target.write_bytes(b"\xff" * (image.stat().st_size + 2**20))  # a bigger card with old contents
    bundle_tar = write_tar(sample_bundle(), tmp_path / "bundle.tar.gz")
    report = flash(image, target, read_bundle(bundle_tar), progress=False, chunk=2**20)
    assert report.verified and report.bytes_written == image.stat().st_size
    with open(target, "rb") as card, open(image, "rb") as original:
        assert card.read(START_LBA * 512) == original.read(START_LBA * 512)  # MBR and gap as in the image
        card.seek(image.stat().st_size - 6000)
        original.seek(image.stat().st_size - 6000)
        assert card.read(6000) == original.read(6000)  # the "root partition" too
    with ImageBoot(target) as boot:
        assert boot.read("kuzet/device.json") == sample_bundle().files["device.json"].data
    with ImageBoot(image) as boot:
        assert boot.read("kuzet/device.json") is None  # the source image is untouched


def test_flash_decompresses_an_xz_image_and_verifies(tmp_path):
    image = build_image(tmp_path / "raspios.img")
    packed = tmp_path / "raspios.img.xz"
    packed.write_bytes(lzma.compress(image.read_bytes(), preset=0))
    target = tmp_path / "card.bin"
    target.write_bytes(b"")
    report = flash(packed, target, sample_bundle(), progress=False)
    assert report.bytes_written == image.stat().st_size
    assert report.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    with ImageBoot(target) as boot:
        assert boot.read("kuzet/config.toml") == sample_bundle().files["config.toml"].data
    with pytest.raises(ImageError, match="compressed"):
        inject(packed, sample_bundle())


def test_flash_refuses_a_mounted_target_before_writing(tmp_path):
    image = build_image(tmp_path / "raspios.img")
    target = tmp_path / "card.bin"
    target.write_bytes(b"old data")
    # a mount table (mountinfo format) where the file is mounted, as a bind-mounted or directly mounted file is
    mounts = parse_mountinfo(
        f"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        f"99 27 7:3 / /media/tech/bootfs rw,relatime - vfat {target} rw,fmask=0022\n"
    )
    with pytest.raises(FlashError, match="mounted at /media/tech/bootfs"):
        flash(image, target, progress=False, mounts=mounts)
    assert target.read_bytes() == b"old data"


def test_the_system_disk_is_refused():
    """This machine's real root disk (when it is one): refused from what /proc and /sys say, before any open."""
    root = next((m for m in Host().mounts() if m.mount_point == "/"), None)
    if root is None or not root.source.startswith("/dev/") or not Path(root.source).exists():
        pytest.skip("the root filesystem is not on a block device here")
    if not stat.S_ISBLK(os.stat(root.source).st_mode):
        pytest.skip(f"{root.source} is not a block device")
    with pytest.raises(FlashError, match="system disk"):
        check_target(Path(root.source), Path("/nonexistent.img"))


# --- made-up /proc and /sys -------------------------------------------------------------------------------


@dataclass
class MadeUpHost(Host):
    """A Host over made-up /proc and /sys trees; device nodes (/dev/...) map to numbers in ``nodes``."""

    nodes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def block_device(self, path):
        return self.nodes.get(path)

    def filesystem_of(self, path):
        return self.nodes.get(path)


class Machine:
    """Builds the sysfs of a machine: disks with partitions, device-mapper/RAID devices on top of them."""

    def __init__(self, root: Path):
        self.sys, self.proc = root / "sys", root / "proc"
        (self.proc / "self").mkdir(parents=True)
        self.host = MadeUpHost(sys_root=self.sys, proc_root=self.proc)
        self.paths: dict[str, Path] = {}

    def _register(self, name: str, number: tuple[int, int], node: Path) -> None:
        node.mkdir(parents=True)
        (node / "dev").write_text(f"{number[0]}:{number[1]}\n")
        (node / "holders").mkdir()
        for link in (
            self.sys / "dev" / "block" / f"{number[0]}:{number[1]}",
            self.sys / "class" / "block" / name,
        ):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(node, link.parent))
        self.host.nodes[f"/dev/{name}"] = number
        self.paths[name] = node

    def disk(self, name: str, major: int, minor: int, partitions: int = 2) -> tuple[int, int]:
        node = self.sys / "devices" / "platform" / "block" / name
        self._register(name, (major, minor), node)
        link = self.sys / "block" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(node, link.parent))
        for index in range(1, partitions + 1):
            part = f"{name}p{index}" if name[-1].isdigit() else f"{name}{index}"
            self._register(part, (major, minor + index), node / part)
            (node / part / "partition").write_text(f"{index}\n")
        return (major, minor)

    def stacked(self, name: str, number: tuple[int, int], on: list[str], node_name: str | None = None):
        """A device-mapper or RAID device built on partitions ``on`` (slaves), which list it as a holder."""
        node = self.sys / "devices" / "virtual" / "block" / name
        self._register(name, number, node)
        (node / "slaves").mkdir()
        for part in on:
            (node / "slaves" / part).symlink_to(os.path.relpath(self.paths[part], node / "slaves"))
            (self.paths[part] / "holders" / name).symlink_to(
                os.path.relpath(node, self.paths[part] / "holders")
            )
        if node_name:
            self.host.nodes[node_name] = number

    def mounts(self, text: str) -> None:
        (self.proc / "self" / "mountinfo").write_text(text)

    def swaps(self, *names: str) -> None:
        lines = ["Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"]
        lines += [f"{n}\t{'partition' if n.startswith('/dev/') else 'file'}\t\t1048572\t0\t-2" for n in names]
        (self.proc / "swaps").write_text("\n".join(lines) + "\n")


def refusal(machine: Machine, disk: str) -> str | None:
    """What check_block_device says of writing ``disk`` on this machine (None: allowed)."""
    try:
        check_block_device(
            Path(f"/dev/{disk}"), machine.host.nodes[f"/dev/{disk}"], machine.host, machine.host.mounts()
        )
    except FlashError as exc:
        return str(exc)
    return None


def test_a_btrfs_root_is_traced_from_its_source_to_its_disk(tmp_path):
    machine = Machine(tmp_path)
    machine.disk("vda", 254, 0)
    machine.disk("sdb", 8, 16)  # the card in the reader
    # btrfs reports an anonymous device number (0:45): only its source names the disk
    machine.mounts(
        "27 1 0:45 /@ / rw,relatime - btrfs /dev/vda2 rw,ssd\n28 27 0:46 /@home /home rw - btrfs /dev/vda2 rw\n"
    )
    assert "system disk (it holds / from /dev/vda2)" in refusal(machine, "vda")
    assert "system disk" in refusal(machine, "vda1")  # a partition of the system disk too
    assert refusal(machine, "sdb") is None  # the card is fine


def test_a_root_on_lvm_or_luks_is_traced_through_device_mapper(tmp_path):
    machine = Machine(tmp_path)
    machine.disk("nvme0n1", 259, 0)
    machine.disk("sdb", 8, 16)
    machine.stacked("dm-0", (253, 0), on=["nvme0n1p2"], node_name="/dev/mapper/vg-root")
    machine.mounts(
        "27 1 253:0 / / rw,relatime - ext4 /dev/mapper/vg-root rw\n"
        "30 27 259:1 / /boot rw,relatime - ext4 /dev/nvme0n1p1 rw\n"
    )
    assert "system disk (it holds / from /dev/mapper/vg-root)" in refusal(machine, "nvme0n1")
    assert refusal(machine, "sdb") is None


def test_a_disk_holding_swap_is_refused(tmp_path):
    machine = Machine(tmp_path)
    machine.disk("vda", 254, 0)
    machine.disk("sdb", 8, 16)
    machine.disk("sdc", 8, 32)
    machine.mounts("27 1 254:1 / / rw - ext4 /dev/vda1 rw\n")
    machine.swaps("/dev/sdb2")
    assert "holds the active swap /dev/sdb2" in refusal(machine, "sdb")
    assert refusal(machine, "sdc") is None


def test_a_disk_held_by_raid_or_device_mapper_is_refused(tmp_path):
    machine = Machine(tmp_path)
    machine.disk("vda", 254, 0)
    machine.disk("sdc", 8, 32)
    machine.disk("sdd", 8, 48)
    machine.stacked("md0", (9, 0), on=["sdc1", "sdd1"])  # a RAID nobody mounted (yet)
    machine.mounts("27 1 254:1 / / rw - ext4 /dev/vda1 rw\n")
    assert "in use by md0" in refusal(machine, "sdc")
    assert "in use by md0" in refusal(machine, "sdd")


def test_a_card_with_a_mounted_partition_is_refused(tmp_path):
    machine = Machine(tmp_path)
    machine.disk("vda", 254, 0)
    machine.disk("sde", 8, 64)
    machine.mounts(
        "27 1 254:1 / / rw - ext4 /dev/vda1 rw\n"
        "99 27 8:65 / /media/tech/bootfs rw - vfat /dev/sde1 rw,fmask=0022\n"
    )
    assert "partition mounted at /media/tech/bootfs" in refusal(machine, "sde")


def test_an_image_file_used_as_swap_or_attached_to_a_loop_device_is_refused(tmp_path):
    image = build_image(tmp_path / "raspios.img")
    machine = Machine(tmp_path / "machine")
    machine.mounts("27 1 254:1 / / rw - ext4 /dev/vda1 rw\n")
    swapfile, attached, free = tmp_path / "swap.bin", tmp_path / "attached.bin", tmp_path / "free.bin"
    for target in (swapfile, attached, free):
        target.write_bytes(b"\0" * 4096)
    machine.swaps(str(swapfile))
    backing = machine.sys / "class" / "block" / "loop3" / "loop" / "backing_file"
    backing.parent.mkdir(parents=True)
    backing.write_text(f"{attached}\n")
    with pytest.raises(FlashError, match="active swap file"):
        check_target(swapfile, image, host=machine.host)
    with pytest.raises(FlashError, match="attached to /dev/loop3"):
        check_target(attached, image, host=machine.host)
    check_target(free, image, host=machine.host)  # the same checks let a free file through


def test_flash_refuses_the_image_itself_and_a_missing_target(tmp_path):
    image = build_image(tmp_path / "raspios.img")
    with pytest.raises(FlashError, match="image itself"):
        flash(image, image, progress=False)
    with pytest.raises(FlashError, match="does not exist"):
        flash(image, tmp_path / "nope.bin", progress=False)
