"""Which heartbeats ingest shows live. Every device sends one every 10 s: at 10,000 devices that is 1,000 a
second, each a row read back, a message to every open page (whose stream reads the device again) and a
re-fold of the camera's incidents on the triage board, while almost none of them changes anything a person
reads. A heartbeat is shown when what the page says of the device changes (its kind, version, model, duty,
detection or watchlist state, or one of its problems: too hot, disk full, battery low, source down...) and
otherwise at most every ``every_s`` per device, so its "last seen" stays fresh. Every other change of a device (new, online or offline) is always
shown: this decides only about heartbeats."""

from __future__ import annotations

import time

from kuzet.central.store import queries
from kuzet.shared.messages import Status

EVERY_S = 30.0  # a quiet device's row is refreshed on the pages this often (three heartbeats)
_KEEP = 100_000  # devices remembered; past that the oldest are forgotten (and shown at their next heartbeat)


class HeartbeatFilter:
    def __init__(self, every_s: float = EVERY_S):
        self.every_s = every_s
        self._shown: dict[str, tuple[tuple, float]] = {}  # device -> (what the page says, when shown)

    def to_show(self, heartbeats: dict[str, Status], now: float | None = None) -> set[str]:
        """The devices among ``heartbeats`` (device -> its latest heartbeat in the batch) to show now."""
        now = time.monotonic() if now is None else now
        due = set()
        for device, status in heartbeats.items():
            said = _what_the_page_says(status)
            before = self._shown.get(device)
            if before is None or before[0] != said or now - before[1] >= self.every_s:
                self._shown.pop(device, None)  # re-inserted last: the dict stays oldest-shown first
                self._shown[device] = (said, now)
                due.add(device)
        while len(self._shown) > _KEEP:
            del self._shown[next(iter(self._shown))]
        return due

    def forget(self, devices: set[str]) -> None:
        """These devices changed otherwise (online, offline, new): their next heartbeat is shown."""
        for device in devices:
            self._shown.pop(device, None)


def _what_the_page_says(status: Status) -> tuple:
    dumped = status.model_dump(mode="json")
    problems = queries.device_health({"online": True, "status": dumped})
    return (
        status.kind,
        status.software_version,
        *(dumped.get(name) for name in ("duty", "model", "detection_enabled", "watchlist", "source_state")),
        tuple((problem.key, tuple(sorted(problem.stored().items()))) for problem in problems),
    )
