"""A cheap colour signature of a detected object, so a track can be found again after it was lost.

Hue-saturation histogram of the box's central part (the torso and legs of a person, away from the background
at the edges), L2-normalised: two signatures compare with a dot product (1: same colours).
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = (16, 4)  # hue, saturation
CORE = 0.2  # share of the box trimmed from each side


def colour_signature(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    x, y, w, h = box
    x0, y0 = int(max(0, x + CORE * w)), int(max(0, y + CORE * h))
    x1, y1 = int(min(image.shape[1], x + (1 - CORE) * w)), int(min(image.shape[0], y + (1 - CORE) * h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    hsv = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(BINS), [0, 180, 0, 256]).ravel()
    norm = np.linalg.norm(hist)
    return hist / norm if norm > 0 else None
