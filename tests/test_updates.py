"""Signed updates on a device: good bundles install with the old version kept; unsigned, foreign-signed and
tampered bundles are refused and the device keeps running what it had."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from edge.updates import install, rollback
from provisioning import signing
from shared import ids, messages, topics

MODEL_V1 = b"\x00tflite-model-v1" * 100
MODEL_V2 = b"\x00tflite-model-v2" * 100


@pytest.fixture
def site_key(tmp_path):
    signing.create_keypair(tmp_path / "update.key", tmp_path / "update.pub")
    return signing.load_private_key(tmp_path / "update.key"), tmp_path / "update.pub"


def make_bundle(tmp_path: Path, key, version: str, data: bytes) -> Path:
    source = tmp_path / f"src-{version}"
    source.mkdir()
    (source / "detect.tflite").write_bytes(data)
    (source / "labelmap.txt").write_text("person\ncar\n")
    out = tmp_path / f"model-{version}.tar"
    signing.sign_update(source, out, key, "model", version)
    return out


def rewrite(bundle: Path, out: Path, change) -> Path:
    """Copy a bundle tar, passing every (name, bytes) through ``change`` (None drops the member)."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            result = change(member.name, data)
            if result is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(result)
            dst.addfile(info, io.BytesIO(result))
    return out


@pytest.fixture
def installed_v1(tmp_path, site_key):
    key, public = site_key
    device = tmp_path / "device"
    result = install(make_bundle(tmp_path, key, "1.0", MODEL_V1), public, device)
    assert result.ok and result.version == "1.0"
    return device


def running_model(device: Path) -> bytes:
    return (device / "current" / "detect.tflite").read_bytes()


def test_good_bundle_installs_and_keeps_previous_for_rollback(tmp_path, site_key, installed_v1):
    key, public = site_key
    result = install(make_bundle(tmp_path, key, "2.0", MODEL_V2), public, installed_v1, expected_kind="model")
    assert result.ok, result.message
    assert (result.version, result.previous_version) == ("2.0", "1.0")
    assert running_model(installed_v1) == MODEL_V2
    back = rollback(installed_v1)
    assert back.ok and back.version == "1.0"
    assert running_model(installed_v1) == MODEL_V1


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda n, d: d.replace(b"v2", b"XX") if n.endswith(".tflite") else d, "checksum mismatch"),
        (lambda n, d: None if n == signing.SIGNATURE else d, "unsigned"),
        (lambda n, d: d.replace(b'"2.0"', b'"2.1"') if n == signing.MANIFEST else d, "bad signature"),
        (lambda n, d: None if n.endswith("labelmap.txt") else d, "missing"),
    ],
    ids=["file-changed", "signature-removed", "manifest-changed", "file-dropped"],
)
def test_tampered_bundle_is_refused_and_old_version_keeps_running(
    tmp_path, site_key, installed_v1, tamper, reason
):
    key, public = site_key
    good = make_bundle(tmp_path, key, "2.0", MODEL_V2)
    bad = rewrite(good, tmp_path / "bad.tar", tamper)
    result = install(bad, public, installed_v1)
    assert not result.ok and result.refused
    assert reason in result.message
    assert result.version == "1.0"
    assert running_model(installed_v1) == MODEL_V1
    assert not (installed_v1 / "versions" / "2.0").exists()
    # what the agent sends back to central for the install_update command
    topic = topics.up("pavlodar", "cam-0a1b2c3d", "command_result")
    sent = messages.decode(topic, messages.encode(result.command_result("cam-0a1b2c3d", ids.new_id())))
    assert sent.ok is False and sent.data["refused"] is True and sent.data["version"] == "1.0"
    assert reason in sent.message


def test_bundle_signed_by_another_site_is_refused(tmp_path, site_key, installed_v1):
    _, public = site_key
    signing.create_keypair(tmp_path / "rogue.key", tmp_path / "rogue.pub")
    rogue = signing.load_private_key(tmp_path / "rogue.key")
    result = install(make_bundle(tmp_path, rogue, "2.0", MODEL_V2), public, installed_v1)
    assert result.refused and "bad signature" in result.message
    assert running_model(installed_v1) == MODEL_V1


def test_extra_file_smuggled_into_bundle_is_refused(tmp_path, site_key, installed_v1):
    key, public = site_key
    good = make_bundle(tmp_path, key, "2.0", MODEL_V2)
    bad = tmp_path / "extra.tar"
    rewrite(good, bad, lambda n, d: d)
    with tarfile.open(bad, "a") as tar:
        info = tarfile.TarInfo("files/../../etc/cron.d/x")
        payload = b"* * * * * root sh"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    result = install(bad, public, installed_v1)
    assert result.refused and "escapes" in result.message
    assert running_model(installed_v1) == MODEL_V1


def test_not_a_bundle_is_refused(tmp_path, site_key, installed_v1):
    _, public = site_key
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 50)
    result = install(junk, public, installed_v1)
    assert result.refused and running_model(installed_v1) == MODEL_V1


def test_failed_post_install_check_rolls_back(tmp_path, site_key, installed_v1):
    key, public = site_key

    def load_model(folder: Path) -> None:
        if b"v2" in (folder / "detect.tflite").read_bytes():
            raise RuntimeError("model does not load on this device")

    result = install(make_bundle(tmp_path, key, "2.0", MODEL_V2), public, installed_v1, check=load_model)
    assert not result.ok and result.rolled_back and not result.refused
    assert result.version == "1.0" and "does not load" in result.message
    assert running_model(installed_v1) == MODEL_V1


def test_wrong_kind_is_refused(tmp_path, site_key, installed_v1):
    key, public = site_key
    result = install(
        make_bundle(tmp_path, key, "2.0", MODEL_V2), public, installed_v1, expected_kind="config"
    )
    assert result.refused and running_model(installed_v1) == MODEL_V1
