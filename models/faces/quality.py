"""How good a face is for recognition: size, sharpness and how frontal it is, from BlazeFace's box and
keypoints. The camera keeps each track's best face by this score; central refuses an enrolment photo whose
face fails it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kuzet.models.faces.detector import LEFT_EYE, NOSE, RIGHT_EYE, Face

# Sharpness is the variance of the Laplacian of the face scaled to a fixed width, against the value at which it
# counts as fully sharp: 64 px for the camera's small faces (comparing one track's faces); dlib's 150 px chip for
# an enrolment photo, where a blurred reference would spoil every comparison (measured on the benchmark photos:
# sharp 210-830, Gaussian blur of 4 px 4-120).
CAMERA_SCALE = (64, 150.0)
ENROLMENT_SCALE = (150, 300.0)
FULL_SIZE_PX = 120.0  # a face this wide or wider scores full marks for size
MAX_YAW = 0.35  # nose offset from the eyes' midpoint, in eye distances: beyond this a face is turned away


@dataclass(frozen=True)
class Quality:
    width_px: float
    sharpness: float  # 0-1
    frontal: float  # 0-1: 1 looking at the camera, 0 at MAX_YAW or beyond
    score: float  # 0-1: the product of size, sharpness and frontality


def frontality(face: Face) -> float:
    """1 - |yaw| / MAX_YAW, clipped: the nose tip's horizontal offset from between the eyes, in eye distances."""
    right, left, nose = face.keypoints[RIGHT_EYE], face.keypoints[LEFT_EYE], face.keypoints[NOSE]
    eye_distance = float(np.linalg.norm(left - right))
    if eye_distance < 1e-3:
        return 0.0
    yaw = abs(float(nose[0] - (left[0] + right[0]) / 2)) / eye_distance
    return float(np.clip(1.0 - yaw / MAX_YAW, 0.0, 1.0))


def sharpness(rgb: np.ndarray, face: Face, scale: tuple[int, float] = CAMERA_SCALE) -> float:
    """0-1: the variance of the Laplacian of the face scaled to ``scale[0]`` px, against ``scale[1]``; the same
    measure whatever the face's size, so a large blurred face does not beat a small sharp one."""
    side, sharp_at = scale
    x, y, w, h = (round(v) for v in face.box)
    crop = rgb[max(0, y) : max(0, y) + max(1, h), max(0, x) : max(0, x) + max(1, w)]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return float(min(1.0, cv2.Laplacian(grey, cv2.CV_64F).var() / sharp_at))


def assess(rgb: np.ndarray, face: Face) -> Quality:
    size = min(1.0, face.width / FULL_SIZE_PX)
    sharp, frontal = sharpness(rgb, face), frontality(face)
    return Quality(face.width, sharp, frontal, size * sharp * frontal)
