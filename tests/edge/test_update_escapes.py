"""A signed update whose members would land outside the new version's folder is refused before anything is
written (shared.bundles.safe_member, edge.updates.installer): absolute names hidden behind ``files//``, ``..``,
``.`` and duplicate spellings, a file that is also a folder, links and device files. The device keeps its
version, and the answer names the member."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kuzet.edge.updates.installer import current_version, install
from kuzet.provisioning import signing
from kuzet.shared import timeutil
from kuzet.shared.bundles import FILES, MANIFEST, SIGNATURE, Manifest, safe_member, sha256_bytes


@pytest.fixture
def site_key(tmp_path):
    signing.create_keypair(tmp_path / "update.key", tmp_path / "update.pub")
    return signing.load_private_key(tmp_path / "update.key"), tmp_path / "update.pub"


def signed_bundle(out: Path, key, version: str, files: dict[str, bytes], extra=()) -> Path:
    """A bundle signed with the site's key whose manifest lists ``files`` under exactly these names, as a
    careless or compromised signing step would make it (``signing.sign_update`` only packs real folders)."""
    manifest = Manifest(
        kind="config",
        version=version,
        created_at=timeutil.now_wire(),
        files={name: {"sha256": sha256_bytes(data), "size": len(data)} for name, data in files.items()},
    )
    data = manifest.to_bytes()
    with tarfile.open(out, "w") as tar:
        for name, content in ((MANIFEST, data), (SIGNATURE, key.sign(data))):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, content in files.items():
            info = tarfile.TarInfo(FILES + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for info in extra:
            tar.addfile(info)
    return out


@pytest.fixture
def device(tmp_path, site_key):
    key, public = site_key
    folder = tmp_path / "device" / "updates"
    result = install(signed_bundle(tmp_path / "v1.tar", key, "1", {"camera.toml": b"[a]\n"}), public, folder)
    assert result.ok and current_version(folder) == "1"
    return folder


def _everything(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize(
    "member",
    [
        "/{outside}/pwned",  # files//abs/path: what follows files/ is absolute
        "../../pwned",  # files/../../pwned: up and out of the staging folder
        "sub/../../../pwned",
        "./camera.toml",  # a second spelling of a name
        "sub//camera.toml",
    ],
)
def test_an_escaping_member_is_refused_before_anything_is_written(tmp_path, site_key, device, member):
    key, public = site_key
    outside = tmp_path / "outside"
    outside.mkdir()
    member = member.format(outside=str(outside).lstrip("/"))
    before = _everything(tmp_path)
    bundle = signed_bundle(tmp_path / "v2.tar", key, "2", {"camera.toml": b"[b]\n", member: b"owned\n"})
    before.add(bundle)

    result = install(bundle, public, device)

    assert result.refused and not result.ok
    assert f"files/{member}" in result.message
    assert current_version(device) == "1"
    assert (device / "current" / "camera.toml").read_bytes() == b"[a]\n"
    assert not list(outside.iterdir())
    assert _everything(tmp_path) == before  # not a file or folder was made, not even in staging


def test_a_file_that_is_also_a_folder_is_refused(tmp_path, site_key, device):
    key, public = site_key
    bundle = signed_bundle(tmp_path / "v2.tar", key, "2", {"conf": b"x", "conf/inner": b"y"})
    result = install(bundle, public, device)
    assert result.refused and "files/conf is both a file and a folder" in result.message
    assert current_version(device) == "1"


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_and_device_files_are_refused(tmp_path, site_key, device, kind):
    key, public = site_key
    odd = tarfile.TarInfo(FILES + "odd")
    odd.type = kind
    odd.linkname = "/etc/passwd"
    bundle = signed_bundle(tmp_path / "v2.tar", key, "2", {"camera.toml": b"[b]\n"}, extra=[odd])
    result = install(bundle, public, device)
    assert result.refused and "files/odd" in result.message
    assert current_version(device) == "1"


def test_safe_member_reads_names_as_written():
    assert safe_member("camera.toml") and safe_member("models/detect.tflite")
    for bad in ("", "/etc/x", "files//etc/x", "a/../b", "..", "./a", "a/./b", "a//b", "a/", "a\\b", "a\x00"):
        assert not safe_member(bad), bad
