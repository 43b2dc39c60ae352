"""Multi-object tracking: a constant-velocity Kalman filter per object and ByteTrack's two-stage association.

Confident detections are matched first; leftover tracks then take the weak detections, which keeps a person
whose score dips behind a pole on the same id. A track is reported once confirmed (``min_hits``) and while its
last search found it; an unmatched track waits ``max_age`` searches for its object to reappear.

Parts of the frame may go unsearched in a frame (the pipeline spreads detector windows over frames): a track
there is carried by its prediction and neither gains nor loses, so the budget never costs an id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from kuzet.edge.vision.config import TrackerSection
from kuzet.edge.vision.types import Detection, Track

Box = tuple[float, float, float, float]

# Constant velocity on (cx, cy, w, h); noise scaled by the object's height, as in SORT/ByteTrack.
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
_POS_NOISE = 1.0 / 20
_VEL_NOISE = 1.0 / 160


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of a (N, 4 xywh) and of b (M, 4 xywh)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax0, ay0 = a[:, 0:1], a[:, 1:2]
    ax1, ay1 = ax0 + a[:, 2:3], ay0 + a[:, 3:4]
    bx0, by0 = b[:, 0], b[:, 1]
    bx1, by1 = bx0 + b[:, 2], by0 + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


def greedy_match(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending score above threshold, each row and column used once."""
    pairs = []
    if scores.size == 0:
        return pairs
    rows, cols = np.nonzero(scores >= threshold)
    order = np.argsort(-scores[rows, cols])
    used_r, used_c = set(), set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class _KalmanTrack:
    def __init__(self, track_id: int, det: Detection, ts: float, history: int):
        x, y, w, h = det.box
        self.mean = np.array([x + w / 2, y + h / 2, w, h, 0, 0, 0, 0], float)
        s = max(h, 1.0)
        self.cov = np.diag(
            np.square(
                [
                    2 * _POS_NOISE * s,
                    2 * _POS_NOISE * s,
                    2 * _POS_NOISE * s,
                    2 * _POS_NOISE * s,
                    10 * _VEL_NOISE * s,
                    10 * _VEL_NOISE * s,
                    10 * _VEL_NOISE * s,
                    10 * _VEL_NOISE * s,
                ]
            )
        )
        self.track = Track(
            track_id=track_id,
            label=det.label,
            score=det.score,
            box=det.box,
            age=0,
            hits=1,
            time_since_update=0,
            history=[(ts, x + w / 2, y + h / 2)],
        )
        self.misses = 0  # searched and not found, in a row
        self.max_history = history
        self.signature: np.ndarray | None = None  # colour signature, smoothed over matches

    def predict(self) -> None:
        s = max(self.mean[3], 1.0)
        q = np.square([_POS_NOISE * s] * 4 + [_VEL_NOISE * s] * 4)
        self.mean = _F @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)
        self.cov = _F @ self.cov @ _F.T + np.diag(q)
        self.track.age += 1
        self.track.time_since_update += 1
        self.track.box = self.box

    def remember(self, signature: np.ndarray | None) -> None:
        if signature is None:
            return
        if self.signature is None:
            self.signature = signature
        else:
            blended = 0.8 * self.signature + 0.2 * signature
            self.signature = blended / max(float(np.linalg.norm(blended)), 1e-9)

    def update(self, det: Detection) -> None:
        s = max(self.mean[3], 1.0)
        r = np.diag(np.square([_POS_NOISE * s] * 4))
        x, y, w, h = det.box
        z = np.array([x + w / 2, y + h / 2, w, h])
        innovation_cov = _H @ self.cov @ _H.T + r
        gain = self.cov @ _H.T @ np.linalg.inv(innovation_cov)
        self.mean = self.mean + gain @ (z - _H @ self.mean)
        self.cov = (np.eye(8) - gain @ _H) @ self.cov
        t = self.track
        t.hits += 1
        t.time_since_update = 0
        t.score = det.score
        # Report the filter's estimate: a single detection's box jitters (a group's box, a sign above a head),
        # the filter weighs it against the size and place the track had.
        t.box = self.box
        self.misses = 0

    @property
    def box(self) -> Box:
        cx, cy, w, h = self.mean[:4]
        return (float(cx - w / 2), float(cy - h / 2), float(w), float(h))


@dataclass
class _Clock:
    last_ts: float | None = None
    frame_dt: float = 0.0  # seconds per frame, smoothed


class Tracker:
    def __init__(self, section: TrackerSection, offsets: dict[str, float] | None = None):
        """``offsets``: per label, how much lower its detector threshold sits (a model that scores that label
        low, see DetectorSection.label_thresholds): its confident stage starts lower by as much."""
        self.section = section
        self._offsets = offsets or {}
        self._tracks: list[_KalmanTrack] = []
        self._next_id = 1
        self._clock = _Clock()

    def update(
        self,
        detections: list[Detection],
        ts: float,
        searched: Callable[[Box], bool] | None = None,
        may_start: Callable[[Detection], bool] | None = None,
        signatures: list[np.ndarray | None] | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> list[Track]:
        """Advance one frame; ``searched(box)`` says whether the detector looked where a track is (None: all);
        ``may_start(detection)`` whether an unmatched detection may begin a track (None: all may);
        ``signatures[i]`` the colour signature of ``detections[i]`` (see appearance.py), to find lost tracks again;
        ``frame_size`` (width, height): an unmatched track predicted mostly out of the frame has left the view.

        Returns the confirmed tracks that their latest search found.
        """
        self._tick(ts)
        for kt in self._tracks:
            kt.predict()
        cfg = self.section
        high = [d for d in detections if d.score >= cfg.high_score - self._offsets.get(d.label, 0.0)]
        low = [d for d in detections if d.score >= cfg.low_score and not any(d is h for h in high)]

        pending = list(range(len(self._tracks)))
        self._signatures = {id(d): sig for d, sig in zip(detections, signatures or [], strict=False)}
        leftover_high = self._associate(pending, high)
        # Second stage: only tracks already established may take weak detections (new ones could be noise).
        established = [i for i in pending if self._tracks[i].track.confirmed]
        self._associate(established, low)
        # Third: a track lost for a while has drifted from its prediction; look for its colours nearby.
        lost = [
            i
            for i in pending
            if self._tracks[i].track.confirmed and self._tracks[i].track.time_since_update > 1
        ]
        leftover_high = self._refind(lost, leftover_high)

        for kt in self._tracks:
            if kt.track.time_since_update > 0 and (searched is None or searched(kt.box)):
                kt.misses += 1
        for det in leftover_high:
            if may_start is not None and not may_start(det):
                continue
            born = _KalmanTrack(self._next_id, det, ts, cfg.history)
            born.remember(self._signatures.get(id(det)))
            self._tracks.append(born)
            self._next_id += 1
        self._tracks = [kt for kt in self._tracks if self._alive(kt) and not self._left(kt, frame_size)]

        reported = []
        for kt in self._tracks:
            t = kt.track
            if t.time_since_update == 0:
                if t.hits >= cfg.min_hits:
                    t.confirmed = True
                cx, cy = t.center
                t.history.append((ts, cx, cy))
                del t.history[: -kt.max_history]
            t.velocity = (
                (float(kt.mean[4]) / self._clock.frame_dt, float(kt.mean[5]) / self._clock.frame_dt)
                if self._clock.frame_dt > 0
                else (0.0, 0.0)
            )
            if t.confirmed and kt.misses == 0:
                # A snapshot: consumers keep tracks across frames and must not see them change under them.
                reported.append(replace(t, history=list(t.history)))
        return reported

    def _associate(self, pending: list[int], detections: list[Detection]) -> list[Detection]:
        """Match detections to the tracks indexed by ``pending`` (matched ones are removed from it)."""
        if not pending or not detections:
            return detections
        track_boxes = np.array([self._tracks[i].box for i in pending])
        det_boxes = np.array([d.box for d in detections])
        overlap = iou_matrix(track_boxes, det_boxes)
        # Overlap decides who may match; among those, colours decide who does: in a group walking together
        # every prediction overlaps several people, and IoU alone swaps their ids.
        weight = self.section.appearance_weight
        tracks = [self._tracks[i] for i in pending]
        allowed = (overlap >= self.section.match_iou) & (
            np.array([kt.track.label for kt in tracks])[:, None]
            == np.array([d.label for d in detections])[None, :]
        )
        similarity = np.ones_like(overlap)
        det_sigs = [self._signatures.get(id(d)) for d in detections]
        known = [c for c, sig in enumerate(det_sigs) if sig is not None]
        rows = [r for r, kt in enumerate(tracks) if kt.signature is not None]
        if weight and known and rows:
            sims = np.array([tracks[r].signature for r in rows]) @ np.array([det_sigs[c] for c in known]).T
            similarity[np.ix_(rows, known)] = np.clip(sims, 0.0, 1.0)
        scores = np.where(allowed, 1.0 + overlap * similarity**weight, 0.0)
        pairs = greedy_match(scores, 1.0)
        matched_tracks = set()
        matched_dets = set()
        for r, c in pairs:
            self._tracks[pending[r]].update(detections[c])
            self._tracks[pending[r]].remember(self._signatures.get(id(detections[c])))
            matched_tracks.add(pending[r])
            matched_dets.add(c)
        pending[:] = [i for i in pending if i not in matched_tracks]
        return [d for c, d in enumerate(detections) if c not in matched_dets]

    def _refind(self, lost: list[int], detections: list[Detection]) -> list[Detection]:
        """Match lost tracks to unmatched detections of the same label by colour, within walking reach."""
        cfg = self.section
        candidates = []
        for i in lost:
            kt = self._tracks[i]
            if kt.signature is None:
                continue
            cx, cy = kt.mean[0], kt.mean[1]
            reach = kt.mean[3] * min(cfg.refind_reach, 0.5 + 0.15 * kt.track.time_since_update)
            for c, d in enumerate(detections):
                sig = self._signatures.get(id(d))
                if sig is None or d.label != kt.track.label:
                    continue
                dx, dy = d.box[0] + d.box[2] / 2 - cx, d.box[1] + d.box[3] / 2 - cy
                if np.hypot(dx, dy) > reach:
                    continue
                similarity = float(kt.signature @ sig)
                if similarity >= cfg.refind_similarity:
                    candidates.append((similarity, i, c))
        used_t, used_d = set(), set()
        for _, i, c in sorted(candidates, reverse=True):
            if i in used_t or c in used_d:
                continue
            used_t.add(i)
            used_d.add(c)
            self._tracks[i].update(detections[c])
            self._tracks[i].remember(self._signatures.get(id(detections[c])))
        return [d for c, d in enumerate(detections) if c not in used_d]

    def _alive(self, kt: _KalmanTrack) -> bool:
        if not kt.track.confirmed:
            return kt.misses == 0 and kt.track.time_since_update <= 2
        # Unsearched time counts too, but slowly: a track out of every window must not live forever.
        return kt.misses <= self.section.max_age and kt.track.time_since_update <= 4 * self.section.max_age

    @staticmethod
    def _left(kt: _KalmanTrack, frame_size: tuple[int, int] | None) -> bool:
        """Unseen and predicted mostly outside the frame: no window will ever look there, so it would coast on."""
        if frame_size is None or kt.track.time_since_update == 0:
            return False
        x, y, w, h = kt.box
        inside_w = min(x + w, frame_size[0]) - max(x, 0.0)
        inside_h = min(y + h, frame_size[1]) - max(y, 0.0)
        return inside_w <= 0 or inside_h <= 0 or inside_w * inside_h < 0.5 * w * h

    def _tick(self, ts: float) -> None:
        c = self._clock
        if c.last_ts is not None and ts > c.last_ts:
            dt = ts - c.last_ts
            c.frame_dt = dt if c.frame_dt == 0 else 0.9 * c.frame_dt + 0.1 * dt
        c.last_ts = ts

    @property
    def tracks(self) -> list[Track]:
        """Every live track, confirmed or not (for drawing and debugging)."""
        return [kt.track for kt in self._tracks]
