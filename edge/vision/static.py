"""Things that arrived and stay: a long-term against a short-term background model (a dual background).

Two running averages of a small grey copy of the frame, sampled a few times a second: the short-term one takes
in a new object within seconds, the long-term one only after minutes. A pixel that differs from the long-term
background but not from the short-term one holds something that came and stopped moving (a dropped bag, a
bottle, a parked car, a person standing). Its evidence grows with each sample it stays so and falls twice as
fast when it does not (leaves in the wind, a person shifting their weight), so only what keeps still piles up.
Regions are reported with how long they have stayed; what they are (litter, or a person or car that a track
already explains) is the rules' business. The same difference appears where something that was there left (a
parked car driving off, a group that stood since the camera started): such a "ghost" has its edges in the
long-term background, not in the frame, and is reported as ``removed``. It sees objects the detector has no class for or finds too small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from kuzet.edge.vision.types import Frame

SCALE_WIDTH = 320  # the models' width in pixels: a 768 px frame at 0.42, a 0.2 m^2 bag 10 m off is ~40 px
SAMPLE_HZ = 4.0  # samples a second: enough to see a still object, a small share of a 25 fps frame budget
SHORT_S = 1.5  # time constant of the short-term background: a new still object is in it after ~3 s
LONG_S = 300.0  # of the long-term background: a new object stays foreground to it for minutes
DIFFERENT = 25  # grey levels: a pixel this far from a background is not that background
MIN_STATIC_S = 1.0  # regions reported once they have stayed this long
GLOBAL_SHARE = 0.3  # more of the frame than this "static" at once is light or the camera, not an object


@dataclass(frozen=True)
class StaticRegion:
    box: tuple[float, float, float, float]  # x, y, w, h in native frame pixels
    area_px: float  # its foreground pixels, in native pixels
    static_s: float  # how long it has stayed
    removed: bool = False  # something that was there went away (a ghost), not something that came


class StaticForeground:
    def __init__(self, sample_hz: float = SAMPLE_HZ):
        self.interval = 1.0 / sample_hz
        self._last_ts = -math.inf
        self._short: np.ndarray | None = None
        self._long: np.ndarray | None = None
        self._evidence: np.ndarray | None = None  # seconds each pixel has been static foreground
        self._scale = 1.0
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.regions: list[StaticRegion] = []

    def feed(self, frame: Frame) -> list[StaticRegion]:
        """The regions that have stayed, as of the latest sample (frames between samples are skipped)."""
        if frame.ts - self._last_ts < self.interval:
            return self.regions
        dt = min(frame.ts - self._last_ts, 2.0)  # after a gap in the source, count no more than 2 s
        self._last_ts = frame.ts
        grey = self._small(frame.image)
        if self._short is None:
            self._short, self._long = grey.copy(), grey.copy()
            self._evidence = np.zeros(grey.shape, np.float32)
            return self.regions
        static = (cv2.absdiff(grey, self._long) > DIFFERENT) & (cv2.absdiff(grey, self._short) <= DIFFERENT)
        static = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, self._kernel).astype(bool)
        cv2.accumulateWeighted(grey, self._short, 1.0 - math.exp(-dt / SHORT_S))
        cv2.accumulateWeighted(grey, self._long, 1.0 - math.exp(-dt / LONG_S))
        if static.mean() > GLOBAL_SHARE:  # the light changed or the camera moved: start the long view afresh
            self._long[:] = self._short
            self._evidence[:] = 0
            self.regions = []
            return self.regions
        self._evidence[static] += dt
        self._evidence[~static] -= 2 * dt
        np.clip(self._evidence, 0.0, None, out=self._evidence)
        self.regions = self._regions(grey)
        return self.regions

    def _small(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        self._scale = min(1.0, SCALE_WIDTH / width)
        size = (max(1, round(width * self._scale)), max(1, round(height * self._scale)))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)

    def _regions(self, grey: np.ndarray) -> list[StaticRegion]:
        mask = (self._evidence >= MIN_STATIC_S).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        inv = 1.0 / self._scale
        out = []
        for i in range(1, count):
            x, y, w, h, area = stats[i]
            stayed = float(np.median(self._evidence[labels == i]))
            removed = self._ghost(grey, (x, y, w, h))
            out.append(StaticRegion((x * inv, y * inv, w * inv, h * inv), area * inv * inv, stayed, removed))
        return out

    def _ghost(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        """More edge in the long-term background than in the frame around the region: what made the
        difference is in the background (it left), not in the frame (it came)."""
        x, y, w, h = box
        x0, y0 = max(0, x - 2), max(0, y - 2)
        x1, y1 = min(grey.shape[1], x + w + 2), min(grey.shape[0], y + h + 2)
        return _edges(self._long[y0:y1, x0:x1]) > _edges(grey[y0:y1, x0:x1])


def _edges(image: np.ndarray) -> float:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.sum(np.abs(gx)) + np.sum(np.abs(gy)))
