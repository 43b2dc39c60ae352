"""The signed update bundle: its format and its verification, the contract between the technician's laptop
(``provisioning.signing`` creates and signs bundles) and the devices (``edge.updates`` checks and installs them).

A bundle is a tar holding ``manifest.json`` (what is inside, each file's sha256 and size), ``manifest.sig`` (the
site's Ed25519 signature of exactly those manifest bytes) and the files under ``files/``. The signature covers
the manifest and the manifest covers every file, so changing, adding or dropping any byte is caught. Devices
verify with the site's public key from their provisioning bundle.

``cryptography`` is imported only when a key is loaded or a signature checked (it costs a device ~8 MB of
memory and most days no update comes); an installation without it gets a clear ``SignatureError`` saying so.
It is in the ``edge`` and ``provisioning`` extras, the two installations that use it.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FILES = "files/"
FORMAT = 1
UpdateKind = Literal["model", "config", "watchlist"]  # watchlist: see shared/watchlist.py
# A bundle is a model (a few MB) or a config; anything far larger is refused before it fills a small disk.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


class SignatureError(ValueError):
    """The bundle is unsigned, signed by another key, or does not match its manifest. ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _crypto():
    """The parts of ``cryptography`` a bundle check needs, or a clear error where it is not installed."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise SignatureError(
            "signed updates need the 'cryptography' package: install Kuzet with the [edge] extra"
        ) from None
    return InvalidSignature, serialization, Ed25519PublicKey


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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_public_key(source: Path | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    """The site's update key from a PEM file, PEM bytes, or a key already loaded."""
    _, serialization, public_key_class = _crypto()
    if isinstance(source, public_key_class):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, public_key_class):
        raise SignatureError("the site public key is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class VerifiedBundle:
    manifest: Manifest
    files: dict[str, bytes]


def verify_update(bundle: Path, public_key: Ed25519PublicKey) -> VerifiedBundle:
    """Open a bundle, check its signature, then every file against the manifest. Raises SignatureError."""
    invalid_signature, _, _ = _crypto()
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
    except invalid_signature:
        raise SignatureError(
            "bad signature: not signed by this site's update key, or the manifest was altered"
        ) from None
    manifest = Manifest.from_bytes(manifest_bytes)
    files = {}
    for name, data in entries.items():
        if not name.startswith(FILES):
            raise SignatureError(f"unexpected entry {name!r} outside files/")
        files[name[len(FILES) :]] = data
    _check_names(set(files) | set(manifest.files))
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


def safe_member(name: str) -> bool:
    """Whether a member path stays inside the folder it is unpacked into: relative, and made of plain names
    only. Checked on the name as written, never normalised first: ``files//etc/x`` has an empty part, and
    what follows ``files/`` in it is the absolute ``/etc/x``; ``a/./b`` would duplicate ``a/b``."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _check_names(names: set[str]) -> None:
    """Every file name a bundle would write: safe, and none both a file and a folder of other files."""
    for name in sorted(names):
        if not safe_member(name):
            raise SignatureError(f"{FILES}{name}: path escapes the bundle")
    folders = {str(parent) for name in names for parent in PurePosixPath(name).parents}
    for name in sorted(names & folders):
        raise SignatureError(f"{FILES}{name} is both a file and a folder of other files")


def _read_members(tar: tarfile.TarFile) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for member in tar.getmembers():
        if member.isdir() and safe_member(member.name.rstrip("/")):
            continue
        if not member.isfile():
            raise SignatureError(f"{member.name}: links and special files are not allowed in a bundle")
        if not safe_member(member.name):
            raise SignatureError(f"{member.name}: path escapes the bundle")
        if member.name in entries:
            raise SignatureError(f"{member.name} appears twice in the bundle")
        handle = tar.extractfile(member)
        entries[member.name] = handle.read() if handle else b""
    return entries
