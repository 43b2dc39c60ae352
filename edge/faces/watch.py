"""Faces on confirmed person tracks, each track's best face embedded within a CPU budget and compared with the
watchlist. Nothing leaves this module but a match: a face that matches no entry, and its embedding, are dropped
as soon as they are compared, and a track's faces are forgotten when the track ends.

Per frame, for each confirmed person track seen in it: the upper part of its box (``head_fraction``) is cut at
native resolution and searched with BlazeFace; the face, if wide enough, is scored (size, sharpness,
frontality) and kept if it beats the track's candidate. Candidates better than what the track last embedded
(by ``better_by``) are embedded, best first, while the budget lasts; a track is embedded at most
``max_embeddings_per_track`` times and never again once it matched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kuzet.edge.faces.budget import CpuBudget
from kuzet.edge.faces.config import FacesSection
from kuzet.edge.faces.watchlist import Watchlist
from kuzet.edge.vision.types import Frame, FrameResult, Track
from kuzet.models.faces.detector import Face, FaceDetector
from kuzet.models.faces.embedder import FaceEmbedder
from kuzet.models.faces.matching import best_match
from kuzet.models.faces.quality import Quality, assess

PERSON = "person"
FACE_TO_PERSON_WIDTH = 0.6  # a face is at most about this share of a person's box width
CROP_MARGIN = 0.4  # the face crop sent with a match: the face box grown by this share on each side


@dataclass(frozen=True)
class Candidate:
    region: np.ndarray  # RGB, the head region at native resolution
    origin: tuple[int, int]  # the region's top-left corner in the frame
    face: Face  # in region pixels
    quality: Quality
    frame: Frame  # the scene it was seen in
    track_box: tuple[float, float, float, float]


@dataclass
class TrackFaces:
    candidate: Candidate | None = None
    embedded_score: float = -1.0
    embeddings: int = 0
    matched: bool = False


@dataclass(frozen=True)
class FaceMatch:
    track_id: int
    entry_id: str
    distance: float
    threshold: float
    face_box: tuple[float, float, float, float]  # in frame pixels
    track_box: tuple[float, float, float, float]
    face_image: np.ndarray  # the face crop, BGR
    frame: Frame  # the scene


class FaceWatch:
    def __init__(
        self,
        section: FacesSection,
        detector: FaceDetector | None = None,
        embedder: FaceEmbedder | None = None,
        budget: CpuBudget | None = None,
    ):
        self.section = section
        self.detector = detector or FaceDetector(threads=1)
        self.embedder = embedder or FaceEmbedder()
        self.budget = budget or CpuBudget(section.cpu_share)
        self.watchlist: Watchlist | None = None
        self._tracks: dict[int, TrackFaces] = {}
        self.counters = {"faces_seen": 0, "faces_embedded": 0, "watchlist_matches": 0}

    def set_watchlist(self, watchlist: Watchlist | None) -> None:
        self.watchlist = watchlist

    def forget(self) -> None:
        """Drop every face held for live tracks (the camera stops, or detection is switched off)."""
        self._tracks.clear()

    def process(self, result: FrameResult) -> list[FaceMatch]:
        alive = {t.track_id for t in result.tracks}
        for gone in [tid for tid in self._tracks if tid not in alive]:
            del self._tracks[gone]  # its candidate face goes with it
        watchlist = self.watchlist  # one reading: a new bundle may replace it from the command thread
        if watchlist is None or not watchlist.current():
            self._tracks.clear()  # no current watchlist: faces are not even looked for
            return []
        rgb = None
        for track in result.tracks:
            if not self._wanted(track):
                continue
            if not self.budget.allows():
                break
            if rgb is None:
                rgb = cv2.cvtColor(result.frame.image, cv2.COLOR_BGR2RGB)
            self._look(track, rgb, result.frame)
        return self._embed_best(watchlist)

    def _wanted(self, track: Track) -> bool:
        if track.label != PERSON or not track.confirmed or track.time_since_update != 0:
            return False
        if track.box[2] * FACE_TO_PERSON_WIDTH < self.section.min_face_px:
            return False  # too far away for a face wide enough to tell people apart
        state = self._tracks.get(track.track_id)
        return state is None or (
            not state.matched and state.embeddings < self.section.max_embeddings_per_track
        )

    def _look(self, track: Track, rgb: np.ndarray, frame: Frame) -> None:
        x, y, w, h = track.box
        fh, fw = rgb.shape[:2]
        # A standing person's head is in the top head_fraction of the box; a close or seated one's lower down,
        # within a square as tall as the box is wide.
        tall = min(h, max(self.section.head_fraction * h, w))
        x0, x1 = max(0, int(x - 0.1 * w)), min(fw, int(x + 1.1 * w) + 1)
        y0, y1 = max(0, int(y - 0.05 * h)), min(fh, int(y + tall) + 1)
        if x1 - x0 < self.section.min_face_px or y1 - y0 < self.section.min_face_px:
            return
        region = rgb[y0:y1, x0:x1]
        with self.budget.spend():
            faces = self.detector.detect(region)
        faces = [f for f in faces if f.width >= self.section.min_face_px]
        if not faces:
            return
        self.counters["faces_seen"] += 1
        face = max(faces, key=lambda f: f.width)
        quality = assess(region, face)
        state = self._tracks.setdefault(track.track_id, TrackFaces())
        if state.candidate is None or quality.score > state.candidate.quality.score:
            state.candidate = Candidate(region.copy(), (x0, y0), face, quality, frame, track.box)

    def _embed_best(self, watchlist: Watchlist) -> list[FaceMatch]:
        due = [
            (tid, s)
            for tid, s in self._tracks.items()
            if s.candidate is not None
            and s.candidate.quality.score >= s.embedded_score + self.section.better_by
        ]
        matches = []
        for tid, state in sorted(due, key=lambda item: -item[1].candidate.quality.score):
            if not self.budget.allows():
                break
            candidate, state.candidate = state.candidate, None
            with self.budget.spend():
                embedding = self.embedder.embed(candidate.region, candidate.face)
            state.embeddings += 1
            state.embedded_score = candidate.quality.score
            self.counters["faces_embedded"] += 1
            threshold = watchlist.threshold or self.section.match_threshold  # the site's, from the bundle
            match = best_match(embedding, list(watchlist.entry_ids), watchlist.embeddings, threshold)
            del embedding  # compared: a face that matches nobody is not kept
            if match is None:
                continue
            state.matched = True
            self.counters["watchlist_matches"] += 1
            matches.append(self._report(tid, candidate, match.entry_id, match.distance, threshold))
        return matches

    def _report(
        self, track_id: int, candidate: Candidate, entry_id: str, distance: float, threshold: float
    ) -> FaceMatch:
        fx, fy, fw, fh = candidate.face.box
        ox, oy = candidate.origin
        region = candidate.region
        mx, my = CROP_MARGIN * fw, CROP_MARGIN * fh
        x0, y0 = max(0, int(fx - mx)), max(0, int(fy - my))
        x1, y1 = min(region.shape[1], int(fx + fw + mx) + 1), min(region.shape[0], int(fy + fh + my) + 1)
        face_image = cv2.cvtColor(region[y0:y1, x0:x1], cv2.COLOR_RGB2BGR)
        face_box = (max(0.0, fx + ox), max(0.0, fy + oy), fw, fh)
        return FaceMatch(
            track_id,
            entry_id,
            distance,
            threshold,
            face_box,
            candidate.track_box,
            face_image,
            candidate.frame,
        )
