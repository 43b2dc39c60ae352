"""Which heartbeats ingest shows live. Every device sends one every 10 s: at 10,000 devices that is 1,000 a
second, each a row read back, a message to every open page and a re-fold of the camera's incidents on the
triage board, while almost none of them changes anything a person reads. A heartbeat is shown when what the
page says of the device differs from its heartbeat stored before (its kind, version, model, duty, detection or
watchlist state, or one of its problems: too hot, disk full, battery low, source down...), and otherwise when
it is the first of a new ``every_s`` window of the device's own clock, so its "last seen" stays fresh.

Both are decided against the store, not a worker's memory: ingest workers sharing the stream each take some of
a device's heartbeats, and one that remembered only what it had shown would show stale state or miss a change.
Every other change of a device (new, online or offline) is always shown: this decides only about heartbeats."""

from __future__ import annotations

import json

from kuzet.central.store import queries
from kuzet.shared import timeutil
from kuzet.shared.messages import Status

EVERY_S = 30.0  # a quiet device's row is refreshed on the pages this often (every third heartbeat)
# A heartbeat's fields the page shows as they are (its problems besides: queries.device_health).
_SHOWN = ("kind", "software_version", "duty", "model", "detection_enabled", "watchlist", "source_state")


def to_show(
    heartbeats: list[Status], stored: dict[str, tuple[str | None, str | None]], every_s=EVERY_S
) -> set[str]:
    """The devices whose heartbeats (in arrival order) the pages are told of. ``stored``: each device's
    heartbeat before these, as the store held it (its JSON and time; ``devices.of_batch``)."""
    before = {
        device: (_said(json.loads(text)) if text else None, _seconds(at))
        for device, (text, at) in stored.items()
    }
    shown = set()
    for status in heartbeats:
        said, at = _said(status.model_dump(mode="json")), status.ts.timestamp()
        said_before, at_before = before.get(status.device, (None, None))
        if at_before is not None and at < at_before:
            continue  # late: the store keeps the newer one, nothing the page says changes
        if at_before is None or said != said_before or at // every_s != at_before // every_s:
            shown.add(status.device)
        before[status.device] = (said, at)
    return shown


def _seconds(wire: str | None) -> float | None:
    return timeutil.from_wire(wire).timestamp() if wire else None


def _said(status: dict) -> tuple:
    """What the page says of a device from its heartbeat (a message as JSON, or as stored)."""
    problems = queries.device_health({"online": True, "status": status})
    return (
        *(status.get(name) for name in _SHOWN),
        tuple((problem.key, sorted(problem.stored().items())) for problem in problems),
    )
