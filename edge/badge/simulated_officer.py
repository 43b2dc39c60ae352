"""A stand-in officer for the demo and for soak tests: works every dispatch through the same agent calls the
terminal interface makes (acknowledge, en route, on scene, resolved with a note), at a human pace."""

from __future__ import annotations

import logging

from kuzet.edge.badge.agent import BadgeAgent
from kuzet.edge.badge.inbox import InboxError
from kuzet.edge.runtime.worker import Worker

log = logging.getLogger(__name__)

# Seconds the officer takes before each step of a dispatch.
PACE = (("acknowledged", 3.0), ("en_route", 4.0), ("on_scene", 20.0), ("resolved", 15.0))
NOTE = "Attended the scene and spoke to the persons involved; no further action. (simulated officer)"


class SimulatedOfficer(Worker):
    thread_name = "simulated-officer"

    def __init__(self, agent: BadgeAgent, pace: tuple[tuple[str, float], ...] = PACE, poll_s: float = 0.5):
        self.agent = agent
        self.pace = pace
        self.poll_s = poll_s
        super().__init__()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            item = self.agent.inbox.current()
            if item is None or not item.open:
                continue
            self._work(item.dispatch_id)

    def _work(self, dispatch_id: str) -> None:
        steps = [name for name, _ in self.pace]
        item = self.agent.inbox.get(dispatch_id)
        start = steps.index(item.state) + 1 if item and item.state in steps else 0
        for state, delay in self.pace[start:]:
            if self._stop.wait(delay):
                return
            item = self.agent.inbox.get(dispatch_id)
            if item is None or not item.open:  # cancelled or reassigned by central meanwhile
                return
            try:
                if state == "resolved":
                    self.agent.resolve(NOTE, dispatch_id)
                else:
                    getattr(self.agent, {"acknowledged": "acknowledge"}.get(state, state))(dispatch_id)
                log.info("simulated officer: %s %s", state.replace("_", " "), dispatch_id)
            except InboxError as exc:
                log.info("simulated officer: cannot %s %s: %s", state, dispatch_id, exc)
                return
