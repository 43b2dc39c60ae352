"""Comparing a face with the watchlist, and what a threshold means for the inspectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    entry_id: str
    distance: float


def best_match(
    embedding: np.ndarray, entry_ids: list[str], embeddings: np.ndarray, threshold: float
) -> Match | None:
    """The closest watchlist embedding within ``threshold`` (Euclidean), or None. An entry may have several
    embeddings (one per enrolled photo): ``entry_ids[i]`` names row i of ``embeddings``."""
    if len(entry_ids) == 0:
        return None
    distances = np.linalg.norm(embeddings - embedding[np.newaxis, :], axis=1)
    best = int(np.argmin(distances))
    if distances[best] > threshold:
        return None
    return Match(entry_ids[best], float(distances[best]))


def false_matches_per_10000(false_match_rate: float, watchlist_size: int) -> float:
    """Expected faces out of 10,000 people who are on no list that still raise a possible match, when each face
    is compared with ``watchlist_size`` entries at a per-comparison false-match rate."""
    return 10_000 * (1.0 - (1.0 - false_match_rate) ** watchlist_size)
