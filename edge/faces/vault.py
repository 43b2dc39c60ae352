"""The watchlist at rest on the camera: encrypted (AES-256-GCM) under a key derived from the device's own private
key (HKDF-SHA256), in one file replaced atomically on every new bundle and wiped when it lapses or cannot be
read. Nothing else of the watchlist ever touches the disk: the signed bundle is verified in memory.

Without a device key there is nothing to derive the key from: the camera then refuses watchlist bundles and
says so (``[faces] key_file``, or ``[mqtt.tls] key``, names the key).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

from kuzet.edge.faces.watchlist import Watchlist
from kuzet.shared import timeutil
from kuzet.shared import watchlist as wire

log = logging.getLogger(__name__)

NONCE_BYTES = 12
HKDF_INFO = b"kuzet watchlist v1"


class VaultError(ValueError):
    """The watchlist cannot be stored or read; the message says why."""


def _aead(device_key: Path, device_id: str):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    try:
        material = device_key.read_bytes()
    except OSError as exc:
        raise VaultError(f"the device key {device_key} cannot be read: {exc}") from None
    key = HKDF(hashes.SHA256(), 32, salt=device_id.encode(), info=HKDF_INFO).derive(material)
    return AESGCM(key)


class WatchlistVault:
    def __init__(self, path: Path, device_key: Path | None, device_id: str):
        self.path, self.device_key, self.device_id = Path(path), device_key, device_id

    def store(self, raw: bytes) -> Watchlist:
        """Check ``raw`` (watchlist.json from a verified bundle), encrypt it over the previous one; the watchlist."""
        if self.device_key is None:
            raise VaultError(
                "no device key to encrypt the watchlist with: set [faces] key_file or [mqtt.tls] key"
            )
        watchlist = _watchlist(wire.decode(raw))
        if not watchlist.current():
            raise VaultError(f"the watchlist lapsed at {timeutil.to_wire(watchlist.expires_at)}")
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + _aead(self.device_key, self.device_id).encrypt(nonce, raw, self.device_id.encode())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "wb") as file:
            file.write(sealed)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        return watchlist

    def load(self, now: datetime | None = None) -> Watchlist | None:
        """The stored watchlist if it is readable and current; otherwise it is wiped and None returned."""
        if not self.path.exists() or self.device_key is None:
            return None
        try:
            sealed = self.path.read_bytes()
            nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
            raw = _aead(self.device_key, self.device_id).decrypt(nonce, body, self.device_id.encode())
            watchlist = _watchlist(wire.decode(raw))
        except Exception as exc:  # another device's file, a changed key, a torn write: unusable either way
            log.warning("watchlist %s cannot be read (%s): wiped", self.path, exc)
            self.wipe()
            return None
        if not watchlist.current(now):
            log.info(
                "watchlist %s lapsed at %s: wiped", watchlist.version, timeutil.to_wire(watchlist.expires_at)
            )
            self.wipe()
            return None
        return watchlist

    def wipe(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".tmp").unlink(missing_ok=True)


def _watchlist(data: wire.WatchlistData) -> Watchlist:
    return Watchlist(data.version, data.entry_ids, data.embeddings, data.expires_at, data.threshold)
