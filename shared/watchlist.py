"""The site's watchlist as cameras receive it: the one file (``watchlist.json``) of a signed ``watchlist``
update bundle (shared/bundles.py), built by central (central/watchlist/bundle.py) and kept encrypted by the
camera (edge/faces/vault.py).

It holds entry ids and embeddings only, never names, photos or case details, plus when it lapses and the
site's match threshold. ``expires_at`` is at most a day or so ahead (central re-issues it): a camera that stops
receiving it, revoked or cut off, stops matching when it lapses.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from kuzet.shared import ids, timeutil

FILE = "watchlist.json"
FORMAT = 1
EMBEDDING_SIZE = 128
MAX_ROWS = 50_000


class WatchlistFormatError(ValueError):
    """The watchlist file is not what a camera can use; the message says why."""


@dataclass(frozen=True)
class WatchlistData:
    version: str
    expires_at: datetime
    threshold: float
    entry_ids: tuple[str, ...]  # one per row of embeddings
    embeddings: np.ndarray  # [N, 128] float32


def encode(data: WatchlistData) -> bytes:
    body = {
        "format": FORMAT,
        "version": data.version,
        "expires_at": timeutil.to_wire(data.expires_at),
        "threshold": data.threshold,
        "entry_ids": list(data.entry_ids),
        "embeddings": base64.b64encode(np.asarray(data.embeddings, "<f4").tobytes()).decode("ascii"),
    }
    return json.dumps(body, sort_keys=True).encode()


def decode(raw: bytes) -> WatchlistData:
    try:
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise WatchlistFormatError(
                f"watchlist format {body.get('format') if isinstance(body, dict) else None!r} is not supported"
            )
        entry_ids = body["entry_ids"]
        if (
            not isinstance(entry_ids, list)
            or len(entry_ids) > MAX_ROWS
            or not all(isinstance(i, str) and ids.is_id(i) for i in entry_ids)
        ):
            raise WatchlistFormatError("watchlist 'entry_ids' must be a list of ids")
        vectors = np.frombuffer(base64.b64decode(body["embeddings"], validate=True), "<f4")
        if vectors.size != len(entry_ids) * EMBEDDING_SIZE or not np.all(np.isfinite(vectors)):
            raise WatchlistFormatError(
                f"watchlist embeddings must be {len(entry_ids)} x {EMBEDDING_SIZE} numbers"
            )
        threshold = body["threshold"]
        if not isinstance(threshold, int | float) or not 0 < threshold < 2:
            raise WatchlistFormatError("watchlist 'threshold' must be a number between 0 and 2")
        return WatchlistData(
            version=str(body["version"]),
            expires_at=timeutil.from_wire(body["expires_at"]),
            threshold=float(threshold),
            entry_ids=tuple(entry_ids),
            embeddings=vectors.reshape(len(entry_ids), EMBEDDING_SIZE).astype(np.float32),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        if isinstance(exc, WatchlistFormatError):
            raise
        raise WatchlistFormatError(f"not a watchlist file: {exc}") from None
