"""The camera's [faces] section: off unless the site turns it on."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kuzet.models.faces.matching import DEFAULT_MATCH_THRESHOLD, DEFAULT_MIN_FACE_PX
from kuzet.shared.config import Section


class FacesSection(Section):
    enabled: bool = False
    # A face within this distance of a watchlist embedding is a possible match (the site's threshold).
    match_threshold: float = Field(DEFAULT_MATCH_THRESHOLD, gt=0.0, lt=1.5)
    # Faces narrower than this are not embedded: too few pixels to tell people apart (bench/faces.py).
    min_face_px: int = Field(DEFAULT_MIN_FACE_PX, ge=16, le=512)
    # Share of one CPU core that face detection and embedding may use, averaged over a few seconds; the
    # detector keeps the rest. An embedding costs about 80-100 ms on one x86 thread.
    cpu_share: float = Field(0.25, gt=0.0, le=1.0)
    # The upper part of a person's box searched for a face.
    head_fraction: float = Field(0.4, gt=0.1, le=1.0)
    # A track is embedded again only when a better face turns up, at most this many times.
    max_embeddings_per_track: int = Field(3, ge=1, le=20)
    # A new face must score this much better (quality 0-1) than the last one embedded to be embedded again.
    better_by: float = Field(0.15, ge=0.0, le=1.0)
    # The device's private key the watchlist's encryption key is derived from; unset: [mqtt.tls] key.
    key_file: Path | None = None
