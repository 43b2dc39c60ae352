"""Turns each frame's tracks into event messages: opened once, updated at a bounded rate, closed once.

The rules say which conditions hold in this frame; the incident lifecycle (lifecycle.py) decides when a
condition becomes an event and when the event ends (minimum duration, grace for a flicker, cool-down, re-found
persons); the engine keeps one open event per incident with a stable ``event_id`` and a rising ``seq``. An update goes out only when something an operator would see changed
(other tracks, a better score, the box moved) and no sooner than ``update_interval_s`` after the last one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from kuzet.edge.events import catalog
from kuzet.edge.events.config import GroundSection, LineSection, RuleSection, ZoneSection, check_references
from kuzet.edge.events.lifecycle import Lifecycle, Reidentifier
from kuzet.edge.events.rules import DWELL_GAP_S, Condition, Rule
from kuzet.edge.vision.static import StaticForeground
from kuzet.edge.vision.types import Frame, FrameResult
from kuzet.shared import ids, timeutil
from kuzet.shared.messages import Box, Event, GeoPoint

MAX_TRACK_IDS = 100  # the message's limit


@dataclass
class OpenEvent:
    event_id: str
    rule: Rule
    zone: str | None
    started_at: datetime
    seq: int
    condition: Condition
    best_score: float
    track_ids: list[int]
    last_sent_ts: float
    sent: Condition  # as in the last message: what "changed" is measured against
    changed: bool = False
    keys: set[str] = field(default_factory=set)  # the rule's keys (persons) this event reports


@dataclass
class EventChange:
    """One message to send, with the frame it describes (for the snapshot and clip)."""

    event: Event
    frame: Frame
    improved: bool = False  # this frame has the event's best score so far
    boxes: list[tuple[tuple[float, float, float, float], str]] = field(default_factory=list)
    snapshot: Frame | None = None  # the frame to show, when an earlier one shows the incident better


class EventEngine:
    def __init__(
        self,
        device: str,
        zones: list[ZoneSection],
        lines: list[LineSection],
        rules: list[RuleSection],
        *,
        location: GeoPoint | None = None,
        update_interval_s: float = 2.0,
        clock: Callable[[], datetime] = timeutil.utc_now,
        lifecycle: bool = True,
        ground: GroundSection | None = None,
    ):
        """``lifecycle=False`` makes every raw condition an event (no grace, cool-down, re-identification or
        crowd hysteresis): the behaviour the lifecycle is measured against. ``ground``: the camera's ground
        plane, for rules in metres and km/h."""
        check_references(zones, lines, rules)
        by_zone = {z.name: z for z in zones}
        by_line = {line.name: line for line in lines}
        self.rules = [catalog.build(r, by_zone, by_line) for r in rules]
        # The static-foreground model, one for the camera, when a rule needs it (littering): a few samples a
        # second on a small grey copy, whatever the frame rate (edge/vision/static.py).
        self.static = StaticForeground() if any(r.needs_static for r in self.rules) else None
        self.lifecycles: dict[str, Lifecycle] = {}
        self.reids: dict[str, Reidentifier] = {}
        plane = ground.plane() if ground is not None else None
        for rule in self.rules:
            for key in ("min_speed_kmh", "min_area_m2"):
                if getattr(rule.section, key) is not None and plane is None:
                    raise ValueError(f"rule {rule.section.name!r}: {key} needs the camera's [ground] points")
            rule.ground = plane
            policy = rule.section.policy(lifecycle)
            rule.gap_s = max(DWELL_GAP_S, policy.grace_s)
            if not lifecycle:
                rule.hysteresis = 0
            self.lifecycles[rule.section.name] = Lifecycle(policy)
            self.reids[rule.section.name] = Reidentifier(policy)
        self.latest: dict[tuple[str, str], Condition] = {}  # each live key's last condition
        self.device = device
        self.location = location
        self.update_interval_s = update_interval_s
        self.clock = clock
        self.open: dict[tuple[str, str], OpenEvent] = {}
        self._frame_size: tuple[int, int] | None = None

    def process(self, result: FrameResult) -> list[EventChange]:
        frame = result.frame
        height, width = frame.image.shape[:2]
        self._frame_size = (width, height)
        now = self.clock()
        changes: list[EventChange] = []
        regions = self.static.feed(frame) if self.static is not None else []
        for rule in self.rules:
            name = rule.section.name
            schedule = rule.section.schedule
            if schedule is not None and not schedule.active(now):
                changes += self._disarm(name, frame, now)
                continue
            reid = self.reids[name]
            if rule.needs_static:
                rule.observe(result, regions)
            conds = rule.step(frame.ts, reid.step(frame.ts, result.tracks, self._frame_size))
            for key, cond in conds.items():
                ids = sorted({tid for identity in cond.track_ids for tid in reid.tracker_ids(identity)})
                self.latest[(name, key)] = replace(cond, track_ids=ids)
            lifecycle = self.lifecycles[name]
            for key, action in lifecycle.step(frame.ts, set(conds)):
                full_key = (name, key)
                cond = self.latest.get(full_key)
                if action == "open":
                    host = self._same_spot(name, cond, lifecycle.policy.reid_distance)
                    if host is not None:  # the same incident under another track: it joins that event
                        host.keys.add(key)
                        self.open[full_key] = host
                        action = "update"
                    else:
                        began = now - timedelta(seconds=frame.ts - lifecycle.opened_at(key))
                        changes.append(self._open(full_key, rule, cond, frame, began))
                if action == "update" and key in conds:
                    change = self._update(self.open[full_key], cond, frame, now)
                    if change is not None:
                        changes.append(change)
                elif action == "close" and full_key in self.open:
                    event = self.open.pop(full_key)
                    event.keys.discard(key)
                    if not event.keys:
                        ended = now - timedelta(seconds=frame.ts - lifecycle.ended_at(key))
                        changes.append(self._close(event, frame, now, ended))
            for key in [k for k in self.latest if k[0] == name and k[1] not in lifecycle.keys]:
                del self.latest[key]
        return changes

    def _same_spot(self, name: str, cond: Condition, reach: float) -> OpenEvent | None:
        """An open event of this rule whose subject stands where ``cond``'s does (within ``reach`` box heights):
        a tracker that swapped ids between people standing together, or a second track on one person."""
        if reach <= 0:
            return None
        x, y, w, h = cond.box
        for (rule_name, _), event in self.open.items():
            ex, ey, ew, eh = event.condition.box
            d = math.hypot(x + w / 2 - ex - ew / 2, y + h - ey - eh)
            if rule_name == name and d <= reach * max(h, eh, 1.0):
                return event
        return None

    def _disarm(self, name: str, frame: Frame, now: datetime) -> list[EventChange]:
        """A rule outside its schedule: its open events close now and its lifecycle starts afresh."""
        self.lifecycles[name] = Lifecycle(self.lifecycles[name].policy)
        closing = {id(e): e for k, e in self.open.items() if k[0] == name}
        self.open = {k: e for k, e in self.open.items() if k[0] != name}
        return [self._close(event, frame, now, now) for event in closing.values()]

    def close_all(self, frame: Frame) -> list[EventChange]:
        """Close every open event (shutdown, detection switched off, a new configuration)."""
        now = self.clock()
        closing = {id(e): e for e in self.open.values()}
        self.open = {}
        for name, lifecycle in self.lifecycles.items():
            self.lifecycles[name] = Lifecycle(lifecycle.policy)
        return [self._close(event, frame, now, now) for event in closing.values()]

    # --- lifecycle ------------------------------------------------------------------------------------------

    def _open(self, key, rule: Rule, cond: Condition, frame: Frame, began: datetime) -> EventChange:
        now = self.clock()
        event = OpenEvent(
            event_id=ids.new_id(),
            rule=rule,
            zone=rule.zone.name if rule.zone else (rule.line.name if rule.line else None),
            started_at=min(began, now),
            seq=0,
            condition=cond,
            best_score=cond.score,
            track_ids=list(cond.track_ids),
            last_sent_ts=frame.ts,
            sent=cond,
            keys={key[1]},
        )
        self.open[key] = event
        return self._change(event, "open", frame, now, improved=True)

    def _update(self, event: OpenEvent, cond: Condition, frame: Frame, now: datetime) -> EventChange | None:
        event.condition = cond
        improved = cond.score > event.best_score
        if improved:
            event.best_score = cond.score
        new_tracks = [t for t in cond.track_ids if t not in event.track_ids]
        event.track_ids = (event.track_ids + new_tracks)[-MAX_TRACK_IDS:]
        sent = event.sent
        if (
            new_tracks
            or improved
            or _moved(sent.box, cond.box)
            or sent.track_ids != cond.track_ids
            or _discrete(sent.attributes) != _discrete(cond.attributes)
        ):
            event.changed = True
        if not event.changed or frame.ts - event.last_sent_ts < self.update_interval_s:
            return None
        event.seq += 1
        event.changed = False
        event.last_sent_ts = frame.ts
        event.sent = cond
        return self._change(event, "update", frame, now, improved=improved)

    def _close(self, event: OpenEvent, frame: Frame, now: datetime, ended: datetime) -> EventChange:
        event.seq += 1
        return self._change(event, "closed", frame, now, ended=ended)

    def _change(
        self, event: OpenEvent, state: str, frame: Frame, now: datetime, improved=False, ended=None
    ) -> EventChange:
        cond = event.condition
        section = event.rule.section
        message = Event(
            device=self.device,
            event_id=event.event_id,
            seq=event.seq,
            state=state,
            event_type=section.event_type,
            severity=section.resolved_severity,
            label=cond.label,
            score=round(min(1.0, max(0.0, event.best_score)), 4),
            started_at=event.started_at,
            ended_at=max(ended or now, event.started_at) if state == "closed" else None,
            zone=event.zone,
            track_ids=sorted(event.track_ids),
            box=_clamp(cond.box, self._frame_size),
            frame_size=self._frame_size,
            location=self.location,
            description=cond.description or None,
            attributes={"rule": section.name, **cond.attributes},
        )
        if state == "open" and cond.evidence is not None:  # who left the object, where they left it
            shown, boxes = cond.evidence
            return EventChange(message, frame, improved=improved, boxes=boxes, snapshot=shown)
        return EventChange(message, frame, improved=improved, boxes=[(cond.box, cond.label)])


def _discrete(attributes: dict) -> dict:
    """Attributes whose change is news (a count, a direction); a dwell time that grows every frame is not."""
    return {k: v for k, v in attributes.items() if not isinstance(v, float)}


def _moved(before, after) -> bool:
    """More than a quarter of the box's size: enough for an operator's thumbnail to look different."""
    scale = max(before[2], before[3], 1.0) / 4
    return any(abs(a - b) > scale for a, b in zip(before, after, strict=True))


def _clamp(box, frame_size) -> Box | None:
    x, y, w, h = box
    x2, y2 = x + w, y + h
    if frame_size is not None:
        x2, y2 = min(x2, frame_size[0]), min(y2, frame_size[1])
    x, y = max(0.0, x), max(0.0, y)
    if x2 - x <= 0 or y2 - y <= 0:
        return None
    return Box(x=round(x, 1), y=round(y, 1), w=max(round(x2 - x, 1), 0.1), h=max(round(y2 - y, 1), 0.1))
