"""Signed update bundles: a tar holding ``manifest.json`` (what is inside, each file's sha256 and size),
``manifest.sig`` (the site's Ed25519 signature of exactly those manifest bytes) and the files under ``files/``.

The signature covers the manifest and the manifest covers every file, so changing, adding or dropping any
byte is caught. Devices verify with the site's public key from their provisioning bundle
(``edge.updates`` does the checking; this module is shared by both sides and needs only ``cryptography``).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kuzet.shared import timeutil

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FILES = "files/"
FORMAT = 1
UpdateKind = Literal["model", "config"]
# A bundle is a model (a few MB) or a config; anything far larger is refused before it fills a small disk.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


class SignatureError(ValueError):
    """The bundle is unsigned, signed by another key, or does not match its manifest. ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Manifest:
    kind: str
    version: str
    created_at: str
    files: dict[str, dict]  # relative path -> {"sha256": hex, "size": int}
    description: str = ""

    def to_bytes(self) -> bytes:
        body = {
            "format": FORMAT,
            "kind": self.kind,
            "version": self.version,
            "created_at": self.created_at,
            "description": self.description,
            "files": self.files,
        }
        return json.dumps(body, sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise SignatureError(f"manifest format {raw.get('format')!r} is not supported")
            files = raw["files"]
            if not isinstance(files, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int)
                for v in files.values()
            ):
                raise SignatureError("manifest 'files' must map paths to {sha256, size}")
            return cls(
                kind=str(raw["kind"]),
                version=str(raw["version"]),
                created_at=str(raw["created_at"]),
                files=files,
                description=str(raw.get("description", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, SignatureError):
                raise
            raise SignatureError(f"manifest is not valid: {exc}") from None


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


def load_public_key(source: Path | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(source, Ed25519PublicKey):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("the site public key is not an Ed25519 key")
    return key


# --- signing ----------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


# --- verifying --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedBundle:
    manifest: Manifest
    files: dict[str, bytes]


def verify_update(bundle: Path, public_key: Ed25519PublicKey) -> VerifiedBundle:
    """Open a bundle, check its signature, then every file against the manifest. Raises SignatureError."""
    bundle = Path(bundle)
    try:
        if bundle.stat().st_size > MAX_BUNDLE_BYTES:
            raise SignatureError(f"bundle is larger than {MAX_BUNDLE_BYTES // 2**20} MiB")
        with tarfile.open(bundle, "r:*") as tar:
            entries = _read_members(tar)
    except (tarfile.TarError, EOFError) as exc:
        raise SignatureError(f"not a readable update bundle: {exc}") from None
    except FileNotFoundError:
        raise SignatureError(f"{bundle}: no such file") from None
    if MANIFEST not in entries:
        raise SignatureError("no manifest.json: this is not a Kuzet update bundle")
    if SIGNATURE not in entries:
        raise SignatureError("unsigned bundle: manifest.sig is missing")
    manifest_bytes = entries.pop(MANIFEST)
    try:
        public_key.verify(entries.pop(SIGNATURE), manifest_bytes)
    except InvalidSignature:
        raise SignatureError(
            "bad signature: not signed by this site's update key, or the manifest was altered"
        ) from None
    manifest = Manifest.from_bytes(manifest_bytes)
    files = {}
    for name, data in entries.items():
        if not name.startswith(FILES):
            raise SignatureError(f"unexpected entry {name!r} outside files/")
        files[name[len(FILES) :]] = data
    missing = set(manifest.files) - set(files)
    extra = set(files) - set(manifest.files)
    if missing:
        raise SignatureError(f"files listed in the manifest are missing: {', '.join(sorted(missing))}")
    if extra:
        raise SignatureError(f"files not in the manifest: {', '.join(sorted(extra))}")
    for name, expected in manifest.files.items():
        if sha256_bytes(files[name]) != expected["sha256"] or len(files[name]) != expected["size"]:
            raise SignatureError(f"checksum mismatch for {name}: the file was altered after signing")
    return VerifiedBundle(manifest, files)


def _read_members(tar: tarfile.TarFile) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for member in tar.getmembers():
        if member.isdir():
            continue
        if not member.isfile():
            raise SignatureError(f"{member.name}: links and special files are not allowed in a bundle")
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise SignatureError(f"{member.name}: path escapes the bundle")
        if member.name in entries:
            raise SignatureError(f"{member.name} appears twice in the bundle")
        handle = tar.extractfile(member)
        entries[member.name] = handle.read() if handle else b""
    return entries
