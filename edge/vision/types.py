"""What flows out of the vision pipeline, one way, into rules and evidence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, native resolution
    index: int  # 0-based position in the source
    ts: float  # seconds (source clock: wall time for live sources, position for files)


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in native frame pixels
    score: float
    label: str


@dataclass
class Track:
    track_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]  # x, y, w, h in native frame pixels, current estimate
    age: int  # frames since the track was born
    hits: int  # frames with a matched detection
    time_since_update: int  # frames since the last matched detection (0: seen this frame)
    velocity: tuple[float, float] = (0.0, 0.0)  # pixels per second, x and y
    confirmed: bool = False
    history: list[tuple[float, float, float]] = field(default_factory=list)  # (ts, cx, cy), bounded

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom centre: where a person stands, the point zone rules test."""
        x, y, w, h = self.box
        return x + w / 2, y + h


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    tracks: list[Track]  # confirmed tracks alive after this frame
    detections: list[Detection]
    motion_share: float  # fraction of the frame that moved
    detector_ms: float  # detector time spent on this frame (0 when it did not run)
