"""dlib's ResNet face descriptor (128-d, CC0) on a face aligned with dlib's 5-point landmarks.

The 5-point shape predictor refines BlazeFace's box into the landmarks dlib's aligner needs; the descriptor of
the aligned 150x150 chip is what the watchlist stores and compares (Euclidean distance: the same person is
usually under 0.4, different people over 0.6).
"""

from __future__ import annotations

import cv2
import numpy as np

from kuzet.models.faces.detector import Face
from kuzet.models.faces.files import INSTALL_HINT, FaceModelError, dlib_landmarks_path, dlib_resnet_path

EMBEDDING_SIZE = 128


CHIP_PX = 150  # dlib's aligned chip; the landmark model is most reliable on a face at least this wide


def _upscaled_around(rgb: np.ndarray, box) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The face's surroundings, enlarged (bicubic) so that the face is CHIP_PX wide when it is smaller: the
    5-point model misplaces the eye corners on a face a few dozen pixels wide. Returns the image and the box in it."""
    x, y, w, h = box
    scale = CHIP_PX / w
    if scale <= 1.0:
        return np.ascontiguousarray(rgb), box
    x0, y0 = max(0, int(x - w / 2)), max(0, int(y - h / 2))
    x1, y1 = min(rgb.shape[1], int(x + 1.5 * w) + 1), min(rgb.shape[0], int(y + 1.5 * h) + 1)
    crop = cv2.resize(rgb[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop), ((x - x0) * scale, (y - y0) * scale, w * scale, h * scale)


class FaceEmbedder:
    """One dlib model pair, loaded once; ``embed`` is single-threaded and takes about 100 ms on x86."""

    def __init__(self):
        try:
            import dlib
        except ImportError:
            raise FaceModelError(f"the face embedding needs dlib: {INSTALL_HINT}") from None

        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(dlib_landmarks_path()))
        self._resnet = dlib.face_recognition_model_v1(str(dlib_resnet_path()))

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The 128-d descriptor (float32) of ``face`` in the RGB uint8 image it was detected in."""
        image, (x, y, w, h) = _upscaled_around(rgb, face.box)
        rect = self._dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
        shape = self._landmarks(image, rect)
        return np.asarray(self._resnet.compute_face_descriptor(image, shape), np.float32)
