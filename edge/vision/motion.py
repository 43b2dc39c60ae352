"""Cheap motion detection: a background model on a small grey copy of the frame, out come moving regions.

MOG2 adapts to slow light changes by itself; a sudden change over most of the frame (lights switched on, the
camera's gain jumping) is reported as no regions so it does not send the detector everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kuzet.edge.vision.config import MotionSection

Box = tuple[int, int, int, int]  # x, y, w, h in native frame pixels


@dataclass(frozen=True)
class Motion:
    regions: list[Box]
    share: float  # fraction of the (unmasked) frame that changed
    mask: np.ndarray | None = None  # 255 where it moved, at motion scale
    scale: float = 1.0  # motion scale / native scale

    def moving_fraction(self, box: tuple[float, float, float, float]) -> float:
        """Share of ``box`` (native px) that moved in this frame."""
        if self.mask is None:
            return 0.0
        x, y, w, h = (v * self.scale for v in box)
        x0, y0 = max(0, int(x)), max(0, int(y))
        x1, y1 = min(self.mask.shape[1], int(np.ceil(x + w))), min(self.mask.shape[0], int(np.ceil(y + h)))
        if x1 <= x0 or y1 <= y0:
            return 0.0
        return cv2.countNonZero(self.mask[y0:y1, x0:x1]) / ((x1 - x0) * (y1 - y0))


class MotionDetector:
    def __init__(self, section: MotionSection):
        self.section = section
        self._subtractor = cv2.createBackgroundSubtractorMOG2(
            history=section.history, varThreshold=section.var_threshold, detectShadows=False
        )
        self._scale = 1.0
        self._size: tuple[int, int] | None = None
        self._allowed: np.ndarray | None = None  # 255 where motion counts, at motion scale
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._grow = (
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * section.dilate + 1, 2 * section.dilate + 1))
            if section.dilate
            else None
        )

    def _prepare(self, width: int, height: int) -> None:
        self._scale = min(1.0, self.section.scale_width / width)
        small = (max(1, round(width * self._scale)), max(1, round(height * self._scale)))
        self._size = small
        allowed = np.full((small[1], small[0]), 255, np.uint8)
        for polygon in self.section.masks:
            points = np.round(np.asarray(polygon, np.float32) * self._scale).astype(np.int32)
            cv2.fillPoly(allowed, [points], 0)
        self._allowed = allowed

    def __call__(self, image: np.ndarray) -> Motion:
        height, width = image.shape[:2]
        if self._size is None or self._native != (width, height):
            self._native = (width, height)
            self._prepare(width, height)
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, self._size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (3, 3), 0)
        moving = self._subtractor.apply(small)
        cv2.bitwise_and(moving, self._allowed, dst=moving)
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, self._kernel)
        allowed_px = max(1, int(cv2.countNonZero(self._allowed)))
        share = cv2.countNonZero(moving) / allowed_px
        if share > self.section.max_share:
            return Motion([], share, None, self._scale)
        if self._grow is not None:
            moving = cv2.dilate(moving, self._grow)
        count, _, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
        inv = 1.0 / self._scale
        min_area_small = self.section.min_area * self._scale * self._scale
        regions = []
        for x, y, w, h, area in stats[1:count]:
            if area < min_area_small:
                continue
            regions.append((int(x * inv), int(y * inv), int(np.ceil(w * inv)), int(np.ceil(h * inv))))
        return Motion(regions, share, moving, self._scale)
