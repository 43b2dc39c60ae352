"""The camera's [faces] section: off unless the site turns it on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Set from bench/faces.py (docs/faces.md): 0.58 is under the smallest impostor distance at every face width
# measured, and a face narrower than 48 px loses most true matches there.
DEFAULT_MATCH_THRESHOLD = 0.58
DEFAULT_MIN_FACE_PX = 48


class FacesSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    match_threshold: float = Field(DEFAULT_MATCH_THRESHOLD, gt=0.0, lt=1.5)
    min_face_px: int = Field(DEFAULT_MIN_FACE_PX, ge=16, le=512)
