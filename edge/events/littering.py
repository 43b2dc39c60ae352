"""Littering: a new object that stays where a person just passed, whatever the object is.

The static-foreground model (``kuzet.edge.vision.static``) reports regions of the frame that changed and then
kept still; it knows nothing of classes, so a bottle, a bag or a packet too small for the detector is seen as
well as a suitcase. This rule keeps the regions that no live track explains (a person standing, a parked car
are tracks), lie in its zone, are at least ``min_area_px`` (``min_area_m2`` with a [ground]) and smaller than
half the box of the person who left them, that are not ghosts of something gone, and that appeared near a
person's feet (within ``REACH``) in the ``owner_window_s`` before they came. Once the region has stayed
``stationary_s`` it is an event naming that person's track, with a snapshot of the person at the spot (one of
the frames kept at 1 a second for the last few seconds).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from kuzet.edge.events import geometry
from kuzet.edge.events.rules import Box, Condition, Rule
from kuzet.edge.vision.static import StaticRegion
from kuzet.edge.vision.types import Frame, FrameResult

KEEP_FRAMES_S = 6.0  # frames kept for the owner's snapshot: the object is seen within seconds of its drop
KEEP_EVERY_S = 1.0
REACH = 0.6  # box heights from a person's feet (about a metre): where they drop or throw something
SAME_OBJECT_IOU = 0.3  # a region overlapping a known object this much is that object, seen again
# The static model sees an object a moment after it came (the short-term background takes it in first): the
# owner may have been at the spot this long after the arrival it reckons.
ARRIVAL_SLACK_S = 3.0


@dataclass
class Candidate:
    box: Box
    owner: tuple[float, int, Box] | None  # (when, track id, box) of the person who passed there last
    frame: Frame | None  # a frame with the owner at the spot, for the snapshot
    # a ghost when first seen (something went away): someone walking in front of it later changes nothing
    removed: bool
    samples: int = 0  # frames it was seen in ...
    covered: int = 0  # ... and of those, under a track's or detection's box


class Littering(Rule):
    needs_static = True

    def __init__(self, *args):
        super().__init__(*args)
        self.people: deque[tuple[float, int, Box]] = deque()  # (ts, track id, box) of persons seen lately
        self.frames: deque[Frame] = deque()
        self.regions: list[StaticRegion] = []
        self.candidates: dict[int, Candidate] = {}
        self.detected: list[Box] = []  # this frame's detections, of any class
        self._next = 1

    def observe(self, result: FrameResult, regions: list[StaticRegion]) -> None:
        frame = result.frame
        if not self.frames or frame.ts - self.frames[-1].ts >= KEEP_EVERY_S:
            self.frames.append(frame)
        while self.frames and frame.ts - self.frames[0].ts > KEEP_FRAMES_S:
            self.frames.popleft()
        self.regions = regions
        self.detected = [d.box for d in result.detections]

    def step(self, ts, tracks):
        for t in tracks:
            if t.label == "person":
                self.people.append((ts, t.track_id, t.box))
        while self.people and ts - self.people[0][0] > self.section.owner_window_s + ARRIVAL_SLACK_S + 1:
            self.people.popleft()
        seen: dict[int, Candidate] = {}
        active = {}
        covers = [t.box for t in tracks] + self.detected
        for region in self.regions:
            if not self._could_be_litter(region):
                continue
            key = self._known(region.box)
            candidate = self.candidates.get(key) or self._candidate(ts, region)
            candidate.box = region.box
            seen[key] = candidate
            # under a track's or a detection's box: that one standing there (a person waiting, a parked car)
            covered = any(_overlap(region.box, box) > 0.5 * region.box[2] * region.box[3] for box in covers)
            candidate.samples += 1
            candidate.covered += covered
            if (
                candidate.removed
                or covered
                or candidate.covered > candidate.samples / 2  # mostly under someone: a person standing
                or candidate.owner is None
                or region.static_s < self.section.stationary_s
            ):
                continue
            owner_ts, owner_id, owner_box = candidate.owner
            if not self._small_enough(region, owner_box):
                continue
            active[str(key)] = Condition(
                [owner_id],
                "object",
                1.0,
                region.box,
                {"owner_track": owner_id, "static_s": round(region.static_s, 1)},
                f"object left behind{self.where} by person {owner_id}",
                evidence=(candidate.frame, [(region.box, "object"), (owner_box, "person")])
                if candidate.frame is not None
                else None,
            )
        self.candidates = seen
        return active

    def _could_be_litter(self, region: StaticRegion) -> bool:
        x, y, w, h = region.box
        if self.polygon is not None and not geometry.inside((x + w / 2, y + h), self.polygon):
            return False
        return self._area(region) >= self._min_area()

    def _min_area(self) -> float:
        if self.section.min_area_m2 is not None and self.ground is not None:
            return self.section.min_area_m2
        return self.section.min_area_px

    def _area(self, region: StaticRegion) -> float:
        """In m^2 where the rule counts in metres: the pixels' area at the object's foot."""
        if self.section.min_area_m2 is None or self.ground is None:
            return region.area_px
        x, y, w, h = region.box
        foot = (x + w / 2, y + h)
        try:
            metres_per_px = self.ground.distance_m(foot, (foot[0] + 1, foot[1]))
        except ValueError:
            return 0.0
        return region.area_px * metres_per_px**2

    @staticmethod
    def _small_enough(region: StaticRegion, owner_box: Box) -> bool:
        """Something a person carries: less than their own box (a car, a kiosk are not dropped)."""
        return region.area_px < 0.5 * owner_box[2] * owner_box[3]

    def _known(self, box: Box) -> int:
        for key, candidate in self.candidates.items():
            if _iou(box, candidate.box) >= SAME_OBJECT_IOU:
                return key
        self._next += 1
        return self._next - 1

    def _candidate(self, ts: float, region: StaticRegion) -> Candidate:
        """A region seen for the first time: who passed nearest to it (their feet within ``REACH`` of their
        height) before it came, in the ``owner_window_s`` before; and a frame with them there. Someone who
        walks over it later did not leave it."""
        x, y, w, h = region.box
        spot = (x + w / 2, y + h)
        came = ts - region.static_s
        owner, nearest = None, REACH
        for entry in reversed(self.people):  # the latest first: of equals, the one who passed last
            if not came - self.section.owner_window_s <= entry[0] <= came + ARRIVAL_SLACK_S:
                continue
            px, py, pw, ph = entry[2]
            d = geometry.distance(spot, (px + pw / 2, py + ph)) / max(ph, 1.0)
            if d < nearest:
                owner, nearest = entry, d
        shown = [f for f in self.frames if owner is not None and abs(f.ts - owner[0]) <= KEEP_EVERY_S]
        frame = min(shown, key=lambda f: abs(f.ts - owner[0])) if shown else None
        return Candidate(region.box, owner, frame, region.removed)


def _overlap(a: Box, b: Box) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def _iou(a: Box, b: Box) -> float:
    inter = _overlap(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
