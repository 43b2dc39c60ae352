"""One event per real incident: the state machine between a rule's raw conditions and the events sent.

A rule says, frame by frame, which conditions hold. Raw, that flickers: a person lost for a few frames, a count
wobbling around its threshold, a track that switches id. The lifecycle turns it into incidents:

- ``min_duration_s``: a condition must hold (gaps up to ``PENDING_GAP_S`` bridged) this long before its event
  is raised; one that goes before then raises nothing.
- ``grace_s``: an open event whose condition went away stays open this long; if the condition comes back it
  carries on as the same event, otherwise it closes, ended when the condition was last seen.
- ``cooldown_s``: after an event closes, the same rule does not raise another for the same subject (the same
  person, or the zone for zone-wide rules such as a crowd) for this long; with ``cooldown_scope = "zone"`` for
  anyone in the rule's zone.
- re-identification (``reid_s``, ``reid_distance``): a new track that starts within ``reid_s`` of a track of the
  same label ending, where that track would have walked to by then (within ``reid_distance`` of its box
  heights), is the same person: it inherits the ended track's identity, so its dwell time, crossings and open
  event carry on instead of starting again. Tracks that ended or start at the frame's edge are people leaving
  or entering the view, never re-found ones.

The machine is the table ``TRANSITIONS`` below; ``Lifecycle.step`` only classifies what a frame means for a key
(a signal) and looks the next phase and action up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kuzet.edge.events import geometry
from kuzet.edge.vision.types import Track

IDLE, PENDING, OPEN, FADING, COOLING = "idle", "pending", "open", "fading", "cooling"
# Signals: SEEN (the condition holds this frame), HELD (it has held for min_duration_s), MISSING (absent, still
# within the grace), EXPIRED (absent past the grace, or a cool-down over).
SEEN, HELD, MISSING, EXPIRED = "seen", "held", "missing", "expired"
EDGE_PX = 8  # a box this near the frame's edge is entering or leaving the view
PENDING_GAP_S = 0.5  # before it is raised, a condition must hold without a longer gap
PREDICT_S = 1.0  # a lost track's velocity is trusted this far ahead, no further

# (phase, signal) -> (next phase, action for the engine: "open", "update", "close" or None)
TRANSITIONS: dict[tuple[str, str], tuple[str, str | None]] = {
    (IDLE, SEEN): (PENDING, None),
    (IDLE, HELD): (OPEN, "open"),  # min_duration_s 0
    (PENDING, SEEN): (PENDING, None),
    (PENDING, HELD): (OPEN, "open"),
    (PENDING, MISSING): (PENDING, None),  # a short gap: still counting
    (PENDING, EXPIRED): (IDLE, None),  # went before it lasted: nothing raised
    (OPEN, SEEN): (OPEN, "update"),
    (OPEN, HELD): (OPEN, "update"),
    (OPEN, MISSING): (FADING, None),
    (OPEN, EXPIRED): (COOLING, "close"),  # grace_s 0
    (FADING, SEEN): (OPEN, "update"),  # came back: the same event goes on
    (FADING, HELD): (OPEN, "update"),
    (FADING, MISSING): (FADING, None),
    (FADING, EXPIRED): (COOLING, "close"),
    (COOLING, SEEN): (COOLING, None),  # suppressed
    (COOLING, HELD): (COOLING, None),
    (COOLING, MISSING): (COOLING, None),
    (COOLING, EXPIRED): (IDLE, None),
}


@dataclass(frozen=True)
class Policy:
    min_duration_s: float = 0.0
    grace_s: float = 0.0
    cooldown_s: float = 0.0
    cooldown_scope: str = "subject"
    reid_s: float = 0.0
    reid_distance: float = 0.0  # box heights


@dataclass
class KeyState:
    phase: str = IDLE
    first_seen: float = 0.0  # when the current run of the condition began
    last_seen: float = 0.0
    closed_at: float = -math.inf


class Lifecycle:
    """The phases of one rule's keys. ``step`` returns [(key, action)] for this frame."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.keys: dict[str, KeyState] = {}
        self.zone_closed_at = -math.inf

    def step(self, ts: float, present: set[str]) -> list[tuple[str, str]]:
        actions = []
        for key in sorted(present | set(self.keys)):  # a fixed order: the same events on every run
            state = self.keys.setdefault(key, KeyState())
            action = self._advance(state, ts, key in present)
            if action == "close":
                self.zone_closed_at = ts
            if action is not None:
                actions.append((key, action))
            if state.phase == IDLE:
                del self.keys[key]
        return actions

    def _advance(self, state: KeyState, ts: float, seen: bool) -> str | None:
        action = None
        for _ in range(3):  # a cool-down ending and a new run starting may happen in one frame
            signal = self._signal(state, ts, seen)
            before = state.phase
            state.phase, step_action = TRANSITIONS[(before, signal)]
            if before == IDLE and state.phase != IDLE:
                state.first_seen = ts
            if step_action == "close":
                state.closed_at = ts
            action = step_action or action
            if not (before == COOLING and state.phase == IDLE and seen):
                break
        if seen:
            state.last_seen = ts
        return action

    def _signal(self, state: KeyState, ts: float, seen: bool) -> str:
        p = self.policy
        if state.phase == COOLING:
            return EXPIRED if ts - state.closed_at >= p.cooldown_s else (SEEN if seen else MISSING)
        if not seen:
            grace = min(p.grace_s, PENDING_GAP_S) if state.phase == PENDING else p.grace_s
            return EXPIRED if ts - state.last_seen > grace else MISSING
        if state.phase in (IDLE, PENDING):
            start = ts if state.phase == IDLE else state.first_seen
            zone_cool = p.cooldown_scope == "zone" and ts - self.zone_closed_at < p.cooldown_s
            return HELD if ts - start >= p.min_duration_s and not zone_cool else SEEN
        return SEEN

    def opened_at(self, key: str) -> float:
        return self.keys[key].first_seen

    def ended_at(self, key: str) -> float:
        return self.keys[key].last_seen


class Reidentifier:
    """Maps tracker ids to stable identities: a track born near where a lost one would be now is that one."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.alias: dict[int, int] = {}  # tracker id -> identity (the first tracker id of the person)
        self.members: dict[int, set[int]] = {}  # identity -> every tracker id it had
        self.alive: dict[int, Track] = {}  # identity -> its track in the last frame
        self.last_ts: dict[int, float] = {}
        self.ended: dict[int, tuple[float, Track]] = {}  # identity -> (when last seen, its last track)

    def step(self, ts: float, tracks: list[Track], frame_size: tuple[int, int] | None = None) -> list[Track]:
        p = self.policy
        out = []
        now_alive: dict[int, Track] = {}
        self.frame_size = frame_size
        for t in tracks:
            identity = self.alias.get(t.track_id)
            if identity is None and p.reid_s > 0 and not self._at_edge(t):
                identity = self._inherit(ts, t)
            if identity is None:
                identity = t.track_id
            if t.track_id not in self.alias:
                self.alias[t.track_id] = identity
                self.members.setdefault(identity, set()).add(t.track_id)
            now_alive[identity] = t
            out.append(t if identity == t.track_id else replace(t, track_id=identity))
        for identity, t in self.alive.items():
            if identity not in now_alive and not self._at_edge(t):
                self.ended[identity] = (self.last_ts.get(identity, ts), t)
        for identity in now_alive:
            self.last_ts[identity] = ts
            self.ended.pop(identity, None)
        self.alive = now_alive
        gone = [i for i in self.members if i not in now_alive and i not in self.ended]
        gone += [i for i, (seen, _) in self.ended.items() if ts - seen > p.reid_s]
        for identity in gone:
            self.ended.pop(identity, None)
            self.last_ts.pop(identity, None)
            for tid in self.members.pop(identity, ()):
                self.alias.pop(tid, None)
        return out

    def _at_edge(self, track: Track) -> bool:
        """Within half its width (at least EDGE_PX) of the frame's edge: entering or leaving the view."""
        if self.frame_size is None:
            return False
        x, y, w, h = track.box
        m = max(EDGE_PX, w / 2)
        return x < m or y < m or x + w > self.frame_size[0] - m or y + h > self.frame_size[1] - m

    def _inherit(self, ts: float, track: Track) -> int | None:
        best, best_d = None, math.inf
        for identity, (seen, old) in self.ended.items():
            if old.label != track.label or ts - seen > self.policy.reid_s:
                continue
            dt = min(ts - seen, PREDICT_S)
            predicted = (old.foot[0] + old.velocity[0] * dt, old.foot[1] + old.velocity[1] * dt)
            height = max(old.box[3], track.box[3], 1.0)
            d = (
                min(geometry.distance(track.foot, predicted), geometry.distance(track.foot, old.foot))
                / height
            )
            if d <= self.policy.reid_distance and d < best_d:
                best, best_d = identity, d
        return best

    def tracker_ids(self, identity: int) -> list[int]:
        return sorted(self.members.get(identity, {identity}))
