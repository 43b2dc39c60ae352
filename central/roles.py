"""Central split over processes: ``kuzet central run --role ingest|web|routing|all``.

- ``all``: one process runs everything, as on a small site (SQLite or PostgreSQL).
- ``ingest``: MQTT in, stored (each worker its own client id, all in one ``$share/`` group); what routing
  takes is kept for it in the same transaction (``central.inbox``).
- ``web``: the page and API; stateless, any number behind a load balancer. Dispatch requests go to the
  routing leader through the store (``central.remote_routing``).
- ``routing``: one leader per site, elected through PostgreSQL (``store.leadership``); standbys wait. The
  leader runs routing, reads the inbox, serves the web workers' requests and runs the site's single jobs
  (retention, the watchlist push).

Every role of a split central relays its live updates through PostgreSQL (``store.live_bus``), so a web
worker's pages see what any process stored or decided. Roles other than ``all`` need a store that several
processes share: ``[store] url``.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from kuzet.central.context import Central
from kuzet.central.inbox import InboxReader
from kuzet.central.ingest.brokers import BrokerLinks
from kuzet.central.remote_routing import RequestServer
from kuzet.central.store.leadership import Leadership

log = logging.getLogger(__name__)

ROLES = ("all", "ingest", "web", "routing")
# Which parts each role starts.
PARTS = {
    "all": {"ingest", "routing", "web", "jobs"},
    "ingest": {"ingest"},
    "web": {"web"},
    "routing": {"routing", "jobs"},
}


def client_id(central: Central, role: str, instance: str) -> str:
    """The MQTT client id of one worker: its own persistent session, the same after each restart (what the
    broker held for a killed ingest worker goes to it when systemd starts it again)."""
    base = central.config.ingest.client_id or f"central-{central.config.central.site}"
    return base if role == "all" else f"{base}-{role}-{instance or '1'}"


class PublishLink:
    """A web or routing worker's way out to the devices (commands, dispatches, watchlists): a link to every
    broker, subscribed to nothing. It does not hear the devices, so each message goes out on every broker
    (a badge keeps each dispatch id once; docs/brokers.md)."""

    def __init__(self, central: Central, client: str):
        self._links = BrokerLinks(central.config.mqtt, client)

    def start(self) -> PublishLink:
        self._links.start()
        return self

    def stop(self) -> None:
        self._links.stop()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._links.publish_everywhere(topic, payload, retain=retain)

    def connected(self) -> bool:
        return any(link.connected.is_set() for link in self._links.links)


class RoutingLeader:
    """Routing under leader election: while this process leads, routing runs (its deadlines reloaded from
    the store, so a dispatch's escalation survives the change of leader), the inbox is read and the site's
    single jobs run; when it stops leading they stop, so that two processes never route at once."""

    def __init__(self, central: Central, url: str, start_jobs, poll_s: float | None = None):
        worker = central.config.worker
        self.central, self._start_jobs, self.url = central, start_jobs, url
        self.leadership = Leadership(
            url,
            "routing",
            central.config.central.site,
            poll_s=poll_s or worker.leader_poll_s,
            on_elected=self._elected,
            on_lost=self._lost,
        )
        self.routing = None  # the running RoutingService while leading
        self.inbox: InboxReader | None = None
        self.requests: RequestServer | None = None
        self.elections = 0
        self._running: contextlib.ExitStack | None = None
        self._lock = threading.Lock()

    @property
    def leading(self) -> bool:
        return self.leadership.leading.is_set()

    def start(self) -> RoutingLeader:
        self.leadership.start()
        return self

    def stop(self) -> None:
        self.leadership.stop()  # steps down: _lost stops what leading started
        self._lost()

    def _elected(self) -> None:
        from kuzet.central.routing.service import RoutingService

        with self._lock, contextlib.ExitStack() as running:  # stopped again if any part fails to start
            routing = RoutingService(self.central).start()
            running.callback(routing.stop)
            poll_s = self.central.config.worker.inbox_poll_s
            self.inbox = InboxReader(
                self.central, routing.handle, routing.settle, poll_s, self.url, behind=routing.behind
            ).start()
            running.callback(self.inbox.stop)  # first: what it handed over is applied by routing.stop
            self.requests = RequestServer(self.central, routing).start()
            running.callback(self.requests.stop)
            self._start_jobs(running)
            self.routing, self._running = routing, running.pop_all()
            self.elections += 1
        log.info("routing: leading site %r", self.central.config.central.site)

    def _lost(self) -> None:
        with self._lock:
            running, self._running, self.routing = self._running, None, None
        if running is not None:
            running.close()
            log.warning("routing: no longer leading; routing stopped here")
