"""An enrolment photo checked and embedded: exactly one clear face, large, sharp and frontal enough, or refused
with the reason the supervisor can act on. The models are the camera's (kuzet.models.faces), so embeddings
made here compare with the camera's."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from flask_babel import gettext as _

MIN_FACE_PX = 80  # an enrolled face this wide or wider: the reference must be better than what cameras see
MIN_SHARPNESS = 0.35
MIN_FRONTAL = 0.5
CLEAR_SCORE = (
    0.7  # a face the detector is this sure of counts; a second one that sure makes the photo ambiguous
)


class PhotoRefused(ValueError):
    """The photo cannot be enrolled; ``str()`` says why, for the supervisor."""


class FacesUnavailable(RuntimeError):
    """Central cannot run the face models (not installed); ``str()`` says what to install."""


@dataclass(frozen=True)
class EnrolledFace:
    embedding: np.ndarray  # float32 [128]
    box: tuple[float, float, float, float]
    width: int
    height: int
    sharpness: float
    frontal: float


class Enroller:
    """Loads the face models on first use; one photo at a time (dlib and LiteRT objects are not shared)."""

    def __init__(self, min_face_px: int = MIN_FACE_PX):
        self.min_face_px = min_face_px
        self._lock = threading.Lock()
        self._detector = self._embedder = None

    def _models(self):
        if self._detector is None:
            from kuzet.models.faces.detector import FaceDetector
            from kuzet.models.faces.embedder import FaceEmbedder

            self._detector, self._embedder = FaceDetector(min_score=0.5), FaceEmbedder()
        return self._detector, self._embedder

    def enrol(self, data: bytes) -> EnrolledFace:
        try:
            import cv2

            from kuzet.models.faces.files import FaceModelError
            from kuzet.models.faces.quality import ENROLMENT_SCALE, frontality, sharpness
        except ImportError:
            raise FacesUnavailable(
                _("Face enrolment needs the 'faces' extra installed on central.")
            ) from None

        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise PhotoRefused(_("The file is not a JPEG or PNG photo."))
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        with self._lock:
            try:
                detector, embedder = self._models()
            except (ImportError, FaceModelError) as exc:
                raise FacesUnavailable(
                    _("The face models cannot be loaded on central: %(why)s", why=str(exc))
                ) from None
            faces = [f for f in detector.detect(rgb) if f.score >= CLEAR_SCORE]
            if not faces:
                raise PhotoRefused(_("No clear face was found in the photo."))
            if len(faces) > 1:
                raise PhotoRefused(
                    _("The photo shows %(n)d faces: crop it to this person's face alone.", n=len(faces))
                )
            face = faces[0]
            if face.width < self.min_face_px:
                raise PhotoRefused(
                    _(
                        "The face is %(width)d pixels wide; at least %(min)d are needed.",
                        width=round(face.width),
                        min=self.min_face_px,
                    )
                )
            sharp, frontal = sharpness(rgb, face, ENROLMENT_SCALE), frontality(face)
            if sharp < MIN_SHARPNESS:
                raise PhotoRefused(_("The face is blurred: use a sharper photo."))
            if frontal < MIN_FRONTAL:
                raise PhotoRefused(_("The face is turned away: use a photo looking at the camera."))
            embedding = embedder.embed(rgb, face)
        return EnrolledFace(embedding, face.box, rgb.shape[1], rgb.shape[0], sharp, frontal)
