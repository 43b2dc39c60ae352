"""The rules: each looks at the confirmed tracks of one frame and says which conditions hold right now.

A rule returns ``{key: Condition}`` for every situation that is currently true (this person is loitering,
that zone is crowded). It knows nothing about events: the engine opens an event when a key appears, updates it
while the key stays and closes it when the key goes. Momentary things (a line crossed, a zone left) stay true
for ``linger_s`` so that their event has a span and evidence.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from kuzet.edge.events import geometry
from kuzet.edge.events.config import LineSection, RuleSection, ZoneSection
from kuzet.edge.vision.types import Frame, Track

Box = tuple[float, float, float, float]

# Below this speed (its own box sizes per second) an object counts as standing still: the tracker's
# velocity of a parked car jitters by a few pixels per second.
STILL = 0.1
# A person this recently out of a zone (a missed detection, a step over its edge) is still dwelling there.
DWELL_GAP_S = 2.0


@dataclass
class Condition:
    track_ids: list[int]
    label: str
    score: float
    box: Box
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)
    description: str = ""
    # A frame that shows the incident better than the one it is raised on, with its boxes (the person who left
    # an object, seen where they left it): the event's snapshot is taken from it.
    evidence: tuple[Frame, list[tuple[Box, str]]] | None = None


def speed(track: Track) -> float:
    return math.hypot(*track.velocity)


def condition(track: Track, description: str, **attributes) -> Condition:
    return Condition([track.track_id], track.label, track.score, track.box, attributes, description)


class Rule:
    needs_static = False  # True: the engine feeds ``observe`` the frames and the static-foreground regions

    def __init__(
        self, section: RuleSection, zone: ZoneSection | None = None, line: LineSection | None = None
    ):
        self.section = section
        self.zone = zone
        self.line = line
        self.labels = set(section.resolved_labels)
        self.polygon = [tuple(p) for p in zone.polygon] if zone else None
        # Set by the engine from the lifecycle: how long a subject may be unseen and keep its state.
        self.gap_s = DWELL_GAP_S
        self.hysteresis = section.hysteresis
        self.ground: geometry.Ground | None = None  # set by the engine when the camera has a [ground]

    def step(self, ts: float, tracks: list[Track]) -> dict[str, Condition]:
        raise NotImplementedError

    def matches(self, track: Track) -> bool:
        return track.label in self.labels and track.score >= self.section.min_score

    def in_zone(self, track: Track) -> bool:
        return self.polygon is None or geometry.inside(track.foot, self.polygon)

    def heading(self, track: Track) -> int:
        """Which way it is going, for an intercept: degrees counter-clockwise from the frame's right (90: up the
        frame, away from a camera looking down a street); with a [ground], in the ground plan's axes (0: +x,
        90: +y of the world points). In steps of 45 degrees: enough to send someone ahead, and a stride's wobble
        is not news."""
        vx, vy = track.velocity
        angle = math.atan2(-vy, vx)
        if self.ground is not None:
            try:
                a = self.ground.to_ground(track.foot)
                b = self.ground.to_ground((track.foot[0] + vx * 0.5, track.foot[1] + vy * 0.5))
                angle = math.atan2(b[1] - a[1], b[0] - a[0])
            except ValueError:
                pass
        return round(math.degrees(angle) / 45) * 45 % 360

    @property
    def where(self) -> str:
        return f" in {self.zone.name}" if self.zone else ""


class ZoneEnter(Rule):
    """An object is in the zone: opened as it enters, closed as it leaves."""

    def step(self, ts, tracks):
        return {
            str(t.track_id): condition(t, f"{t.label} entered {self.zone.name}")
            for t in tracks
            if self.matches(t) and self.in_zone(t)
        }


class ZoneExit(Rule):
    def __init__(self, *args):
        super().__init__(*args)
        self.was_inside: dict[int, bool] = {}
        self.left_at: dict[int, float] = {}

    def step(self, ts, tracks):
        active = {}
        alive = set()
        for t in tracks:
            if not self.matches(t):
                continue
            alive.add(t.track_id)
            now_inside = self.in_zone(t)
            if self.was_inside.get(t.track_id) and not now_inside:
                self.left_at[t.track_id] = ts
            if now_inside:
                self.left_at.pop(t.track_id, None)
            self.was_inside[t.track_id] = now_inside
            left = self.left_at.get(t.track_id)
            if left is not None and ts - left <= self.section.linger_s:
                active[str(t.track_id)] = condition(t, f"{t.label} left {self.zone.name}")
        _forget(self.was_inside, alive)
        _forget(self.left_at, alive)
        return active


class Loitering(Rule):
    def __init__(self, *args):
        super().__init__(*args)
        self.entered: dict[int, float] = {}
        self.last_inside: dict[int, float] = {}

    def step(self, ts, tracks):
        active = {}
        for t in tracks:
            if not self.matches(t):
                continue
            if self.in_zone(t):
                if ts - self.last_inside.get(t.track_id, -math.inf) > self.gap_s:
                    self.entered[t.track_id] = ts
                self.last_inside[t.track_id] = ts
                dwell = ts - self.entered[t.track_id]
                if dwell >= self.section.dwell_s:
                    active[str(t.track_id)] = condition(
                        t, f"{t.label} loitering in {self.zone.name}", dwell_s=round(dwell, 1)
                    )
        # A person unseen for a moment (lost, or re-identified under a new track) keeps their dwell time.
        for track_id in [k for k, seen in self.last_inside.items() if ts - seen > self.gap_s]:
            del self.last_inside[track_id]
            self.entered.pop(track_id, None)
        return active


class LineCrossing(Rule):
    def __init__(self, *args):
        super().__init__(*args)
        self.a, self.b = (tuple(p) for p in self.line.points)
        self.previous: dict[int, tuple[float, float]] = {}
        self.crossed: dict[int, tuple[float, str]] = {}

    def step(self, ts, tracks):
        active = {}
        wanted = self.section.direction
        for t in tracks:
            if not self.matches(t):
                continue
            before = self.previous.get(t.track_id)
            if geometry.side(t.foot, self.a, self.b) != 0:  # a step onto the line is not yet a crossing
                self.previous[t.track_id] = t.foot
            if before is not None:
                way = geometry.crossing(before, t.foot, self.a, self.b)
                direction = {1: "left_to_right", -1: "right_to_left"}.get(way)
                if direction and wanted in ("any", direction):
                    self.crossed[t.track_id] = (ts, direction)
            hit = self.crossed.get(t.track_id)
            if hit is not None and ts - hit[0] <= self.section.linger_s:
                active[str(t.track_id)] = condition(
                    t, f"{t.label} crossed {self.line.name} ({hit[1].replace('_', ' ')})", direction=hit[1]
                )
        alive = {t.track_id for t in tracks}
        _forget(self.previous, alive)
        _forget(self.crossed, alive)
        return active


class Crowd(Rule):
    """More than max_count in the zone; once so, it stays a crowd while more than max_count - hysteresis are
    there (a count wobbling around the threshold is one crowd)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.crowded = False

    def step(self, ts, tracks):
        present = [t for t in tracks if self.matches(t) and self.in_zone(t)]
        threshold = self.section.max_count - (self.hysteresis if self.crowded else 0)
        self.crowded = len(present) > threshold
        if not self.crowded:
            return {}
        xs = [t.box[0] for t in present] + [t.box[0] + t.box[2] for t in present]
        ys = [t.box[1] for t in present] + [t.box[1] + t.box[3] for t in present]
        label = present[0].label
        return {
            "zone": Condition(
                track_ids=sorted(t.track_id for t in present),
                label=label,
                score=max(t.score for t in present),
                box=(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)),
                attributes={"count": len(present), "max_count": self.section.max_count},
                description=f"{len(present)} {label}s in {self.zone.name} (a crowd once more than {self.section.max_count})",
            )
        }


class NoStopping(Rule):
    def __init__(self, *args):
        super().__init__(*args)
        self.still_since: dict[int, float] = {}

    def step(self, ts, tracks):
        active = {}
        for t in tracks:
            if not (self.matches(t) and self.in_zone(t)):
                self.still_since.pop(t.track_id, None)
                continue
            size = max(t.box[2], t.box[3], 1.0)
            if speed(t) / size < STILL:
                self.still_since.setdefault(t.track_id, ts)
            else:
                self.still_since.pop(t.track_id, None)
            since = self.still_since.get(t.track_id)
            if since is not None and ts - since >= self.section.stopped_s:
                active[str(t.track_id)] = condition(
                    t, f"{t.label} stopped in {self.zone.name}", stopped_s=round(ts - since, 1)
                )
        _forget(self.still_since, {t.track_id for t in tracks})
        return active


class Running(Rule):
    def __init__(self, *args):
        super().__init__(*args)
        self.fast_since: dict[int, float] = {}

    def step(self, ts, tracks):
        active = {}
        kmh = self.section.min_speed_kmh if self.ground is not None else None
        threshold = kmh or self.section.min_speed
        for t in tracks:
            if not (self.matches(t) and self.in_zone(t)):
                self.fast_since.pop(t.track_id, None)
                continue
            if kmh:
                fast, unit = self.ground.speed_kmh(t.foot, t.velocity), "speed_kmh"
            else:
                fast, unit = speed(t) / max(t.box[3], 1.0), "speed_heights_per_s"
            if fast >= threshold:
                self.fast_since.setdefault(t.track_id, ts)
            elif fast < 0.8 * threshold:  # hysteresis: a stride's jitter does not end the event
                self.fast_since.pop(t.track_id, None)
            if t.track_id in self.fast_since:  # how long it must last: the lifecycle's min_duration_s
                active[str(t.track_id)] = condition(
                    t, f"{t.label} running{self.where}", heading_deg=self.heading(t), **{unit: round(fast, 2)}
                )
        _forget(self.fast_since, {t.track_id for t in tracks})
        return active


class ObjectLeft(Rule):
    """A carried object that appeared where a person was, stays put, and no one is with it any more."""

    def __init__(self, *args):
        super().__init__(*args)
        self.people: deque[tuple[float, tuple[float, float], float]] = deque()  # (ts, centre, height)
        self.had_owner: dict[int, bool] = {}
        self.still_since: dict[int, float] = {}

    def _person_near(self, point, since: float) -> bool:
        return any(
            seen >= since and geometry.distance(point, centre) <= height
            for seen, centre, height in self.people
        )

    def step(self, ts, tracks):
        for t in tracks:
            if t.label == "person":
                self.people.append((ts, t.center, t.box[3]))
        while self.people and ts - self.people[0][0] > self.section.owner_window_s:
            self.people.popleft()
        active = {}
        for t in tracks:
            if not (self.matches(t) and self.in_zone(t)):
                continue
            if t.track_id not in self.had_owner:
                self.had_owner[t.track_id] = self._person_near(t.center, ts - self.section.owner_window_s)
            size = max(t.box[2], t.box[3], 1.0)
            if speed(t) / size < STILL:
                self.still_since.setdefault(t.track_id, ts)
            else:
                self.still_since.pop(t.track_id, None)
            since = self.still_since.get(t.track_id)
            attended = self._person_near(t.center, ts)
            if (
                self.had_owner[t.track_id]
                and since is not None
                and ts - since >= self.section.stationary_s
                and not attended
            ):
                active[str(t.track_id)] = condition(
                    t, f"{t.label} left behind{self.where}", unattended_s=round(ts - since, 1)
                )
        alive = {t.track_id for t in tracks}
        _forget(self.had_owner, alive)
        _forget(self.still_since, alive)
        return active


class Chase(Rule):
    """A person running after another: both faster than ``min_speed`` (``min_speed_kmh`` with a [ground]),
    heading the same way within ``chase_angle_deg``, the follower behind the leader and on the leader's path,
    where the leader was at most ``chase_gap_s`` ago. Reported as a ``chase`` event."""

    def __init__(self, *args):
        super().__init__(*args)
        self.paths: dict[int, deque[tuple[float, tuple[float, float]]]] = {}

    def _fast(self, t: Track) -> bool:
        if self.section.min_speed_kmh and self.ground is not None:
            return self.ground.speed_kmh(t.foot, t.velocity) >= self.section.min_speed_kmh
        return speed(t) / max(t.box[3], 1.0) >= self.section.min_speed

    def step(self, ts, tracks):
        for t in tracks:
            path = self.paths.setdefault(t.track_id, deque())
            path.append((ts, t.foot))
            while ts - path[0][0] > self.section.chase_gap_s:
                path.popleft()
        _forget(self.paths, {t.track_id for t in tracks})
        runners = [t for t in tracks if self.matches(t) and self.in_zone(t) and self._fast(t)]
        same_way = math.cos(math.radians(self.section.chase_angle_deg))
        active = {}
        for lead in runners:
            for follow in runners:
                ahead = (lead.foot[0] - follow.foot[0], lead.foot[1] - follow.foot[1])
                if (
                    follow is lead
                    or _cos(lead.velocity, follow.velocity) < same_way
                    or _cos(ahead, follow.velocity) < same_way  # the leader is in front, not beside
                    or not any(  # where the leader was a moment ago (not where they are now)
                        ts - seen >= 0.3 and geometry.distance(follow.foot, foot) <= follow.box[3]
                        for seen, foot in self.paths[lead.track_id]
                    )
                ):
                    continue
                x0, y0 = min(lead.box[0], follow.box[0]), min(lead.box[1], follow.box[1])
                x1 = max(lead.box[0] + lead.box[2], follow.box[0] + follow.box[2])
                y1 = max(lead.box[1] + lead.box[3], follow.box[1] + follow.box[3])
                active[f"{lead.track_id}>{follow.track_id}"] = Condition(
                    [lead.track_id, follow.track_id],
                    lead.label,
                    min(lead.score, follow.score),
                    (x0, y0, x1 - x0, y1 - y0),
                    {
                        "chase": True,
                        "leader": lead.track_id,
                        "follower": follow.track_id,
                        "heading_deg": self.heading(lead),
                    },
                    f"{follow.label} running after {lead.label}{self.where}",
                )
        return active


class RepeatedStops(Rule):
    """One person stopping briefly again and again at different spots of a zone (casing cars or doors): at least
    ``stops`` stops of ``stop_min_s``..``stop_max_s``, each ``stop_spacing`` box heights from the others, within
    ``stops_window_s``. Reported as a ``repeated_stops`` event with ``attributes.stops``."""

    STOPPED = 0.25  # box heights per second: standing (a walker covers about 0.8)

    def __init__(self, *args):
        super().__init__(*args)
        self.still_since: dict[int, tuple[float, tuple[float, float]]] = {}
        self.stops: dict[int, deque[tuple[float, tuple[float, float]]]] = {}

    def step(self, ts, tracks):
        sec = self.section
        active = {}
        for t in tracks:
            if not (self.matches(t) and self.in_zone(t)):
                self.still_since.pop(t.track_id, None)
                continue
            stops = self.stops.setdefault(t.track_id, deque())
            if speed(t) / max(t.box[3], 1.0) < self.STOPPED:
                self.still_since.setdefault(t.track_id, (ts, t.foot))
            else:
                began = self.still_since.pop(t.track_id, None)
                if began is not None and sec.stop_min_s <= ts - began[0] <= sec.stop_max_s:
                    spacing = sec.stop_spacing * t.box[3]
                    if all(geometry.distance(began[1], spot) >= spacing for _, spot in stops):
                        stops.append((ts, began[1]))
            while stops and ts - stops[0][0] > sec.stops_window_s:
                stops.popleft()
            if len(stops) >= sec.stops:
                active[str(t.track_id)] = condition(
                    t, f"{t.label} stopped {len(stops)} times{self.where}", stops=len(stops)
                )
        alive = {t.track_id for t in tracks}
        _forget(self.still_since, alive)
        _forget(self.stops, alive)
        return active


class PersonDown(Rule):
    """A person whose box turned from upright (taller than ``UPRIGHT`` times its width) to lying (wider than
    ``LYING`` times its height) within ``FALL_WINDOW_S``, and who has lain still since for ``down_s``: a fall,
    someone collapsed or drunk. Reported as a ``person_down`` event."""

    UPRIGHT = 1.5
    LYING = 1.2
    FALL_WINDOW_S = 5.0  # upright this recently before lying: a fall, not something that always looked flat
    STILL = 0.25  # its own box widths per second: breathing, the box's jitter

    def __init__(self, *args):
        super().__init__(*args)
        self.upright_at: dict[int, float] = {}
        self.down_since: dict[int, float] = {}
        self.last_seen: dict[int, float] = {}

    def step(self, ts, tracks):
        active = {}
        for t in tracks:
            if not (self.matches(t) and self.in_zone(t)):
                self.down_since.pop(t.track_id, None)
                continue
            x, y, w, h = t.box
            if h > self.UPRIGHT * w:
                self.upright_at[t.track_id] = ts
                self.down_since.pop(t.track_id, None)
                continue
            lying = w > self.LYING * h and speed(t) / max(w, 1.0) < self.STILL
            fell = ts - self.upright_at.get(t.track_id, -math.inf) <= self.FALL_WINDOW_S
            if not lying:
                self.down_since.pop(t.track_id, None)
            elif t.track_id not in self.down_since and fell:
                self.down_since[t.track_id] = ts
            since = self.down_since.get(t.track_id)
            if since is not None and ts - since >= self.section.down_s:
                active[str(t.track_id)] = condition(
                    t, f"{t.label} down{self.where}", down_s=round(ts - since, 1)
                )
        # A fall often loses the track for a few frames (the box changes shape at once): what was seen of a
        # person is kept while they may still come back (the lifecycle's grace) or could still have fallen.
        for t in tracks:
            self.last_seen[t.track_id] = ts
        for track_id in [k for k, seen in self.last_seen.items() if ts - seen > self.gap_s]:
            del self.last_seen[track_id]
            self.down_since.pop(track_id, None)
        for track_id in [k for k, up in self.upright_at.items() if ts - up > self.FALL_WINDOW_S]:
            del self.upright_at[track_id]
        return active


def _cos(a: tuple[float, float], b: tuple[float, float]) -> float:
    na, nb = math.hypot(*a), math.hypot(*b)
    return (a[0] * b[0] + a[1] * b[1]) / (na * nb) if na and nb else -1.0


def _forget(state: dict, alive: set[int]) -> None:
    for track_id in [k for k in state if k not in alive]:
        del state[track_id]
