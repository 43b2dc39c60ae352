"""Comparing a face with the watchlist, and what a threshold means for the inspectors.

The defaults come from bench/faces.py on real photos (docs/faces.md has the run): 0.58 is under the smallest
impostor distance at every face width measured (full resolution: every true pair still matches; a 48 px face
as a street camera gives it: 0.84 of them); faces narrower than 48 px lose most true matches (0.33 at 32 px),
so they are not embedded at all. ``MEASURED_FALSE_MATCH_RATE`` is the per-comparison false-match rate at 0.58
from a normal fitted to the 1,572 street-condition impostor distances (none of them matched).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MATCH_THRESHOLD = 0.58
DEFAULT_MIN_FACE_PX = 48
MEASURED_FALSE_MATCH_RATE = 2.0e-4


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
