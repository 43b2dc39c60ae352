"""Flashing onto loop files (regular files, never a real disk) with read-back verification, refusal of mounted
and system targets, and bundle injection into a real FAT partition inside an image file."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from provisioning.bundle import FIRSTBOOT, Bundle, read_bundle, write_tar
from provisioning.flash import FlashError, check_target, flash, parse_mountinfo, read_mounts
from provisioning.image import ImageBoot, ImageError, boot_partition_offset, inject
from tests.fat_image import START_LBA, build_image


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
    root = next((m for m in read_mounts() if m.mount_point == "/"), None)
    if root is None or not root.source.startswith("/dev/") or not Path(root.source).exists():
        pytest.skip("the root filesystem is not on a block device here")
    if not stat.S_ISBLK(os.stat(root.source).st_mode):
        pytest.skip(f"{root.source} is not a block device")
    with pytest.raises(FlashError, match="system disk"):
        check_target(Path(root.source), Path("/nonexistent.img"))


def test_flash_refuses_the_image_itself_and_a_missing_target(tmp_path):
    image = build_image(tmp_path / "raspios.img")
    with pytest.raises(FlashError, match="image itself"):
        flash(image, image, progress=False)
    with pytest.raises(FlashError, match="does not exist"):
        flash(image, tmp_path / "nope.bin", progress=False)
