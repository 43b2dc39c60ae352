"""The event's track timeline as the page draws it: every update the edge sent, placed on a time axis in the
site's zone, its score as a line, its state in words. Pure layout; the template draws the SVG."""

from __future__ import annotations

from datetime import timedelta

from kuzet.central.web import i18n
from kuzet.shared import timeutil

WIDTH, LEFT, RIGHT = 1000, 40, 960  # the SVG's viewBox width and the drawn span inside it
SCORE_TOP, SCORE_BOTTOM = 48, 100  # y of a 100 % and a 0 % score
TICKS = 5  # time labels under the axis


def _x(seconds: float, span: float) -> float:
    return LEFT + (seconds / span) * (RIGHT - LEFT) if span else (LEFT + RIGHT) / 2


def _y(score: float | None) -> float:
    return SCORE_BOTTOM - (score if score is not None else 0.0) * (SCORE_BOTTOM - SCORE_TOP)


def layout(timeline: list[dict]) -> dict | None:
    """{"points": [...], "ticks": [...], "score_path": "x,y x,y", "duration_s": n}; None without times."""
    timed = [(timeutil.from_wire(u["ts"]), u) for u in timeline if u.get("ts")]
    if not timed:
        return None
    first = min(when for when, _ in timed)
    span = (max(when for when, _ in timed) - first).total_seconds()
    points, named = [], 0
    for when, update in timed:
        offset = (when - first).total_seconds()
        points.append(
            {
                "x": round(_x(offset, span), 1),
                "y": round(_y(update.get("score")), 1),
                "state": update["state"],
                "word": i18n.label(i18n.EDGE_STATES, update["state"]),
                "time": i18n.clock(when),
                "score": update.get("score"),
                "seq": update.get("seq"),
                # A change of state is named above the line; repeated updates are only dots.
                "named": not points or points[-1]["state"] != update["state"],
            }
        )
        if points[-1]["named"]:  # names alternate between two rows, so that close changes stay readable
            points[-1]["label_y"] = 14 if named % 2 == 0 else 32
            named += 1
    ticks = [
        {
            "x": round(_x(span * n / (TICKS - 1), span), 1),
            "time": i18n.clock(first + timedelta(seconds=span * n / (TICKS - 1))),
        }
        for n in range(TICKS if span else 1)
    ]
    # A short track gives ticks of the same second: each time is labelled once.
    ticks = [tick for n, tick in enumerate(ticks) if n == 0 or tick["time"] != ticks[n - 1]["time"]]
    scored = [p for p in points if p["score"] is not None]
    return {
        "points": points,
        "ticks": ticks,
        "score_path": " ".join(f"{p['x']},{p['y']}" for p in scored),
        "duration_s": round(span),
    }
