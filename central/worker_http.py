"""Each central worker's health and Prometheus metrics. A web worker serves them on its page's address
(``central.web.health``, with ``WorkerCollector`` added); an ingest or routing worker has no page, so it
answers ``/healthz`` and ``/metrics`` on ``[worker] metrics_host:metrics_port`` (loopback by default: the
metrics carry no secrets but no log-in either).

What a worker adds to ingest's own metrics: its role and instance, whether it leads routing, how far ingest
lags (the oldest message waiting while nothing commits) and how much waits in routing's inbox."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from kuzet.central import inbox

log = logging.getLogger(__name__)

# An ingest worker is unhealthy when what it kept for routing has waited this long (no leader takes it).
INBOX_STALE_S = 60.0


@dataclass
class WorkerState:
    """What this process is, read at scrape time."""

    central: object
    role: str
    instance: str
    ingest: object | None = None  # the running IngestService
    leader: object | None = None  # the RoutingLeader (routing role)

    def leading(self) -> bool | None:
        """Whether this process leads routing; None where it takes no part in routing."""
        if self.leader is not None:
            return self.leader.leading
        return True if self.role == "all" else None

    def ingest_lag_s(self) -> float:
        """How long messages have waited with nothing committed (0 while the queue is empty)."""
        ingest = self.ingest
        if ingest is None or not ingest.queue_depth:
            return 0.0
        last = ingest.last_commit_at or ingest.started_at or time.time()
        return max(time.time() - last, 0.0)

    def health(self) -> tuple[list[str], dict]:
        problems: list[str] = []
        body: dict = {"role": self.role, "instance": self.instance, "leading": self.leading()}
        if self.ingest is not None:
            state = self.ingest.health()
            problems += state.pop("problems")
            body["ingest"] = state
        if self.role == "ingest":  # what it kept for routing is taken: a leader runs somewhere
            try:
                waited = inbox.oldest_age_s(self.central.db())
            except Exception as exc:
                problems.append(f"the store does not answer: {exc}")
            else:
                if waited > INBOX_STALE_S:
                    problems.append(
                        f"routing has not taken what ingest kept for it for {waited:.0f} s: "
                        "is a routing worker leading?"
                    )
        if self.leader is not None and self.leader.leading:
            try:
                body["inbox_waiting"], body["inbox_lag_s"] = inbox.waiting(self.central.db())
            except Exception as exc:  # the store's trouble: unhealthy, said why
                problems.append(f"the store does not answer: {exc}")
        return problems, body


class WorkerCollector:
    def __init__(self, state: WorkerState):
        self.state = state

    def collect(self):
        state = self.state
        info = InfoMetricFamily("kuzet_worker", "This central process: its role and instance")
        info.add_metric([], {"role": state.role, "instance": state.instance})
        yield info
        leading = state.leading()
        if leading is not None:
            yield GaugeMetricFamily(
                "kuzet_routing_leader", "1 while this process leads routing for its site", int(leading)
            )
        if state.ingest is not None:
            yield GaugeMetricFamily(
                "kuzet_ingest_lag_seconds",
                "How long messages have waited with nothing committed (0 while the queue is empty)",
                state.ingest_lag_s(),
            )
        if state.leader is not None and state.leader.leading:
            count, age = inbox.waiting(state.central.db())
            yield GaugeMetricFamily(
                "kuzet_routing_inbox_waiting", "Messages stored by ingest, not yet applied by routing", count
            )
            yield GaugeMetricFamily(
                "kuzet_routing_inbox_lag_seconds", "Age of the oldest message waiting for routing", age
            )


class _Threads(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # a scrape every few seconds is not worth a log line
        pass


class WorkerHttp:
    """``/healthz`` (200, or 503 with the problems) and ``/metrics`` of an ingest or routing worker."""

    def __init__(self, state: WorkerState, host: str, port: int, registry: CollectorRegistry):
        self.state, self.registry = state, registry
        self._server = make_server(host, port, self._app, server_class=_Threads, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="worker-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WorkerHttp:
        self._thread.start()
        log.info("worker health and metrics on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _app(self, environ, start_response: Callable):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body, status, kind = generate_latest(self.registry), "200 OK", CONTENT_TYPE_LATEST
        elif path == "/healthz":
            problems, state = self.state.health()
            state = {"status": "unhealthy" if problems else "ok", "problems": problems, **state}
            body = json.dumps(state, default=str).encode()
            status = "503 Service Unavailable" if problems else "200 OK"
            kind = "application/json"
        else:
            body, status, kind = b"not found\n", "404 Not Found", "text/plain"
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]
