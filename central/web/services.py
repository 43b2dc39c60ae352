"""What the web app acts through, handed to ``create_app`` as one typed object instead of string keys looked
up in each view: ``services()`` returns it inside a request."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app
from prometheus_client import CollectorRegistry

from kuzet.central.auth.ratelimit import LoginLimiter
from kuzet.central.context import Central
from kuzet.central.operations import Operations
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


def services() -> Services:
    return current_app.extensions[KEY]
