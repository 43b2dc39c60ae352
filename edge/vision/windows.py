"""Where the detector looks: square windows at native resolution around motion and live tracks.

Regions that sit close together share one window (the detector costs the same for one person as for five);
a cluster larger than a window gets a larger window, resized down by the detector. When there are more windows
than the per-frame budget, the ones searched longest ago go first, so every moving part of the scene is seen
within a few frames and the tracker carries its objects in between.
"""

from __future__ import annotations

import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h
Window = tuple[int, int, int, int]

CELL = 32  # px of the staleness grid


def _union(a: Box, b: Box) -> Box:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def cluster(regions: list[Box], side: int, margin: float) -> list[Box]:
    """Greedily merge regions while the merged extent (plus margins) still fits one window of ``side``."""
    clusters: list[Box] = []
    for region in sorted(regions, key=lambda r: -r[2] * r[3]):
        for k, c in enumerate(clusters):
            u = _union(c, region)
            if u[2] + 2 * margin <= side and u[3] + 2 * margin <= side:
                clusters[k] = u
                break
        else:
            clusters.append(region)
    # A second pass merges clusters that grew into each other's reach.
    merged = True
    while merged:
        merged = False
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                u = _union(clusters[i], clusters[j])
                if u[2] + 2 * margin <= side and u[3] + 2 * margin <= side:
                    clusters[i] = u
                    del clusters[j]
                    merged = True
                    break
            if merged:
                break
    return clusters


def square_window(box: Box, side: int, margin: float, frame_w: int, frame_h: int) -> Window:
    """A square around ``box`` (grown by margin), at least ``side``, moved inside the frame."""
    x, y, w, h = box
    size = int(min(max(side, w + 2 * margin, h + 2 * margin), frame_w, frame_h))
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - size / 2, 0), frame_w - size)))
    y0 = int(round(min(max(cy - size / 2, 0), frame_h - size)))
    return (x0, y0, size, size)


class WindowPlanner:
    def __init__(
        self, side: int, budget: int, margin: float = 24.0, max_side: int | None = None, revisit: int = 1
    ):
        self.side = side
        self.revisit = revisit  # frames before a searched area is searched again
        self.max_side = max(side, max_side or side)
        self.budget = budget
        self.margin = margin
        self._last_searched: np.ndarray | None = None  # frame index per grid cell
        self._frame = 0

    def plan(self, regions: list[Box], frame_w: int, frame_h: int) -> list[Window]:
        if self._last_searched is None or self._last_searched.shape != (
            -(-frame_h // CELL),
            -(-frame_w // CELL),
        ):
            self._last_searched = np.full((-(-frame_h // CELL), -(-frame_w // CELL)), -1_000_000, np.int64)
        self._frame += 1
        regions = [r for r in regions if r[2] > 0 and r[3] > 0]
        clusters = cluster(regions, self.max_side, self.margin)
        windows = [square_window(c, self.side, self.margin, frame_w, frame_h) for c in clusters]
        if self.revisit > 1:  # most of the window searched within the last revisit frames: not yet again
            windows = [w for w in windows if self._staleness(w, np.median) >= self.revisit]
        if len(windows) > self.budget:
            windows.sort(key=self._staleness, reverse=True)
            windows = windows[: self.budget]
        return windows

    def _staleness(self, window: Window, of=np.min) -> int:
        x, y, w, h = window
        cells = self._last_searched[y // CELL : -(-(y + h) // CELL), x // CELL : -(-(x + w) // CELL)]
        return int(self._frame - of(cells))

    def mark(self, windows: list[Window]) -> None:
        for x, y, w, h in windows:
            # Only cells wholly inside count as searched: an object on the border may have been cut.
            self._last_searched[-(-y // CELL) : (y + h) // CELL, -(-x // CELL) : (x + w) // CELL] = (
                self._frame
            )
