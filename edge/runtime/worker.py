"""A device's background loops (the badge's evidence recorder, the simulated officer...): a daemon thread that
runs ``_run`` until ``stop`` sets ``_stop``."""

from __future__ import annotations

import threading
from typing import Self


class Worker:
    thread_name = "worker"
    join_timeout_s = 5.0

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.join_timeout_s)

    def _run(self) -> None:
        raise NotImplementedError
