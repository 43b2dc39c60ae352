"""What the web app acts through, handed to ``create_app`` as one typed object instead of string keys looked
up in each view: ``services()`` returns it inside a request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app
from prometheus_client import CollectorRegistry

from kuzet.central.auth.ratelimit import LoginLimiter
from kuzet.central.context import Central
from kuzet.central.operations import Operations
from kuzet.central.store import queries
from kuzet.central.store.media import MediaStore
from kuzet.central.store.response_cache import EndedShifts
from kuzet.central.web.board import IncidentBoard

if TYPE_CHECKING:
    from kuzet.central.ingest.service import IngestService
    from kuzet.central.worker_http import WorkerState

KEY = "kuzet.services"


@dataclass
class Services:
    central: Central
    operations: Operations  # the one door for every change (central.operations)
    media: MediaStore
    ingest: IngestService | None = None  # the running ingest, for /healthz and /metrics
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)
    closing: threading.Event = field(default_factory=threading.Event)  # set on shutdown: live streams end
    metrics: CollectorRegistry | None = None  # this app's Prometheus registry (central.web.health)
    worker: WorkerState | None = None  # this process's role, for /healthz and /metrics (central.roles)
    board: IncidentBoard = field(init=False)  # the open incidents, kept current per change
    response_times: EndedShifts = field(default_factory=EndedShifts)  # the ended shifts' figures, kept
    filter_menus: FilterMenus = field(default_factory=lambda: FilterMenus())  # the queue's and board's menus
    # Live streams open at once: each holds a server thread of its own, beside ``http.threads`` for requests.
    streams: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.board = IncidentBoard(self.central)
        self.streams = threading.BoundedSemaphore(self.central.config.http.streams)

    @classmethod
    def for_central(cls, central: Central, routing=None, ingest=None, worker=None) -> Services:
        return cls(
            central=central,
            operations=Operations(central, routing),
            media=MediaStore.for_central(central),
            ingest=ingest,
            worker=worker,
        )


class FilterMenus:
    """What the queue's and the board's filter menus offer (cameras, zones, types ever seen), read again at most
    every ``max_age_s``: each read scans the events (zones have no index), and a shift's pages load often; a new
    camera, zone or type appears in the menus within that time."""

    def __init__(self, max_age_s: float = 30.0) -> None:
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._kept: tuple[float, dict[str, list[str]]] | None = None

    def get(self, db) -> dict[str, list[str]]:
        with self._lock:
            if self._kept is None or time.monotonic() - self._kept[0] >= self.max_age_s:
                self._kept = (time.monotonic(), queries.distinct_values(db))
            return self._kept[1]


def services() -> Services:
    return current_app.extensions[KEY]
