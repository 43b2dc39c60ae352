"""A device's events at a steady rate through its durable outbox, every message id remembered; and the ids
central stored (the broker crash and failover tests count lost and duplicate events with them)."""

from __future__ import annotations

import threading
import time

from kuzet.edge.delivery import PRIORITY_EVENT
from kuzet.edge.runtime import DeviceRuntime
from kuzet.shared import messages, topics
from support.ingest import SITE, event, new_id


class Producer:
    def __init__(self, runtime: DeviceRuntime, rate: int):
        self.runtime = runtime
        self.rate = rate  # events a second
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        device = self.runtime.device
        topic = topics.up(SITE, device, "event")
        started, sent = time.monotonic(), 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            for _ in range(due - sent):
                message = event(device, new_id(), 0)
                self.runtime.publisher.enqueue(
                    topic, messages.encode(message), kind="event", priority=PRIORITY_EVENT
                )
                self.ids.append(message.id)
            sent = due
            time.sleep(0.01)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def stored_ids(central) -> list[str]:
    return [row[0] for row in central.db().execute("SELECT msg_id FROM event_updates").fetchall()]
