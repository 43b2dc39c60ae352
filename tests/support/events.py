"""Synthetic tracks and an event engine fed at a fixed rate, for the event rules' and lifecycle's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from kuzet.edge.events.config import LineSection, ZoneSection
from kuzet.edge.events.engine import EventEngine
from kuzet.edge.vision.types import Frame, FrameResult, Track

FPS = 10
IMAGE = np.zeros((576, 768, 3), np.uint8)
SQUARE = ZoneSection(name="square", polygon=[(200, 200), (500, 200), (500, 500), (200, 500)])
GATE = LineSection(name="gate", points=[(100, 100), (100, 500)])  # a vertical line, pointing down
GONE = [[]] * 60  # 6 s with nobody: longer than any default grace, so open events close


def person(track_id, x, y, *, vx=0.0, vy=0.0, h=100.0, label="person", score=0.8) -> Track:
    """A track whose foot is at (x, y)."""
    w = h * 0.4
    return Track(
        track_id=track_id,
        label=label,
        score=score,
        box=(x - w / 2, y - h, w, h),
        age=10,
        hits=10,
        time_since_update=0,
        velocity=(vx, vy),
        confirmed=True,
    )


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # 15:00 in Pavlodar

    def __call__(self):
        return self.now


def run(engine: EventEngine, clock: Clock, frames: list[list[Track]], start_ts=0.0):
    """Feed frames at FPS; return every event message in order."""
    out = []
    for i, tracks in enumerate(frames):
        ts = start_ts + i / FPS
        clock.now += timedelta(seconds=1 / FPS)
        result = FrameResult(Frame(IMAGE, i, ts), tracks, [], 0.0, 0.0)
        out.extend(change.event for change in engine.process(result))
    return out


def make(*rules, **kwargs) -> tuple[EventEngine, Clock]:
    clock = Clock()
    engine = EventEngine("cam-1", [SQUARE], [GATE], list(rules), clock=clock, **kwargs)
    return engine, clock


def states(events) -> list[tuple[str, str, int]]:
    return [(e.event_type, e.state, e.seq) for e in events]


def walk(track_id, start, end, seconds, **kwargs) -> list[Track]:
    n = int(seconds * FPS)
    return [
        person(
            track_id, start[0] + (end[0] - start[0]) * i / n, start[1] + (end[1] - start[1]) * i / n, **kwargs
        )
        for i in range(n)
    ]
