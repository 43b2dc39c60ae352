"""The watchlist as the camera holds it in memory: embeddings and entry ids only, never names or photos."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from kuzet.models.faces.embedder import EMBEDDING_SIZE
from kuzet.shared import timeutil


@dataclass(frozen=True)
class Watchlist:
    version: str  # the bundle's, for the status and the audit
    entry_ids: tuple[str, ...]  # entry_ids[i] names row i of embeddings (an entry may have several rows)
    embeddings: np.ndarray  # [N, 128] float32
    expires_at: datetime  # UTC: after this the camera wipes it and matches nothing
    threshold: float | None = None  # the site's, when the bundle sets it (else [faces] match_threshold)

    def __post_init__(self):
        if self.embeddings.shape != (len(self.entry_ids), EMBEDDING_SIZE):
            raise ValueError(
                f"watchlist embeddings are {self.embeddings.shape}; expected ({len(self.entry_ids)}, {EMBEDDING_SIZE})"
            )

    def current(self, now: datetime | None = None) -> bool:
        return len(self.entry_ids) > 0 and (now or timeutil.utc_now()) < self.expires_at
