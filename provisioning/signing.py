"""Creating signed update bundles, on the technician's laptop: the site's Ed25519 key pair and ``sign_update``.

The bundle's format and its verification (manifest, checksums, signature check, safe member paths) are the
contract shared with the devices and live in ``shared.bundles``; they are re-exported here for the laptop's
commands and tests.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuzet.shared import timeutil
from kuzet.shared.bundles import (
    FILES,
    FORMAT,
    MANIFEST,
    MAX_BUNDLE_BYTES,
    SIGNATURE,
    Manifest,
    SignatureError,
    UpdateKind,
    VerifiedBundle,
    load_public_key,
    sha256_bytes,
    verify_update,
)

__all__ = [
    "FILES",
    "FORMAT",
    "MANIFEST",
    "MAX_BUNDLE_BYTES",
    "SIGNATURE",
    "Manifest",
    "SignatureError",
    "UpdateKind",
    "VerifiedBundle",
    "create_keypair",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "sha256_bytes",
    "sign_update",
    "verify_update",
]


# --- keys -------------------------------------------------------------------------------------------------


def create_keypair(private_path: Path, public_path: Path) -> None:
    from kuzet.provisioning.ca import write_private

    key = Ed25519PrivateKey.generate()
    write_private(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    public_path.write_bytes(public_key_pem(key.public_key()))


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 private key")
    return key


# --- signing ----------------------------------------------------------------------------------------------


def sign_update(
    source: Path,
    out: Path,
    key: Ed25519PrivateKey,
    kind: UpdateKind,
    version: str,
    description: str = "",
) -> Manifest:
    """Pack a file or a folder into a signed update bundle at ``out``."""
    source = Path(source)
    if source.is_dir():
        members = {p.relative_to(source).as_posix(): p for p in sorted(source.rglob("*")) if p.is_file()}
    elif source.is_file():
        members = {source.name: source}
    else:
        raise FileNotFoundError(f"{source}: no such file or folder")
    if not members:
        raise ValueError(f"{source}: nothing to pack")
    contents = {name: path.read_bytes() for name, path in members.items()}
    manifest = Manifest(
        kind=kind,
        version=version,
        created_at=timeutil.now_wire(),
        files={n: {"sha256": sha256_bytes(d), "size": len(d)} for n, d in contents.items()},
        description=description,
    )
    manifest_bytes = manifest.to_bytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        _add(tar, MANIFEST, manifest_bytes)
        _add(tar, SIGNATURE, key.sign(manifest_bytes))
        for name, data in contents.items():
            _add(tar, FILES + name, data)
    return manifest


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
