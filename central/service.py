"""``kuzet central run``: the broker (when embedded), ingest, routing, retention and the web page, in one
process (role ``all``) or the parts of one role in each of several (``central.roles``), until Ctrl-C or
SIGTERM stops them all in the reverse order they started."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from kuzet.central import commands, inbox
from kuzet.central.broker import EmbeddedBroker
from kuzet.central.context import Central
from kuzet.central.ingest.service import IngestService
from kuzet.central.operations import ROUTED_KINDS, Operations
from kuzet.central.remote_routing import RemoteRouting
from kuzet.central.roles import PARTS, PublishLink, RoutingLeader, client_id
from kuzet.central.store.live_bus import PostgresLiveBus
from kuzet.central.store.media import MediaStore
from kuzet.central.store.retention import apply_retention, run_on_postgresql
from kuzet.central.watchlist import push as watchlist_push
from kuzet.central.worker_http import WorkerCollector, WorkerHttp, WorkerState

log = logging.getLogger(__name__)


def serve(
    central: Central,
    stop: threading.Event | None = None,
    *,
    role: str = "all",
    instance: str = "",
    bus_url: str = "",
) -> int:
    """Run central's parts for ``role`` (``central.roles``) until ``stop`` is set (or a signal arrives);
    returns the process exit status. ``bus_url``: the PostgreSQL that a split central's processes share
    (live updates, leader election); ``[store] url`` from the command line."""
    stop = stop or threading.Event()
    config = central.config
    if config.broker.embedded and config.ingest.share_group:
        log.error("the embedded broker (amqtt) has no shared subscriptions: remove [ingest] share_group")
        return 2
    if role != "all" and not bus_url:
        log.error("--role %s needs a store that several processes share: set [store] url", role)
        return 2
    with contextlib.ExitStack() as running, _signals_set(stop):
        if config.broker.embedded and role == "all":
            if config.mqtt.protocol != "3.1.1":
                log.warning("the embedded broker speaks MQTT 3.1.1 only; central uses 3.1.1 with it")
                config.mqtt.protocol = "3.1.1"
            broker = EmbeddedBroker(config.broker.host, config.broker.port).start()
            running.callback(broker.stop)
            log.info("embedded MQTT broker (demo only) on %s", broker.url)

        start_parts(central, running, role=role, instance=instance, bus_url=bus_url)
        log.info("central %r is running (role %s); Ctrl-C stops it", config.central.site, role)
        stop.wait()
        log.info("central is stopping")
    return 0


@dataclass
class Parts:
    """Central's running parts, for whoever started them (``serve``, tests, the demo); None where this
    process's role does not run the part."""

    ingest: IngestService | None
    # The running RoutingService (role all), or the leader's through the store (RemoteRouting, role web)
    routing: object | None
    web: object | None  # central.web.server.WebServer, when the page is installed and this role serves it
    operations: Operations  # the one door for every change (central.operations)
    worker: WorkerState | None = None  # this process's role, health and metrics
    leader: RoutingLeader | None = None  # routing under leader election (role routing)
    worker_http: WorkerHttp | None = None  # /healthz and /metrics of an ingest or routing worker


def start_parts(
    central: Central,
    running: contextlib.ExitStack,
    *,
    web: bool = True,
    web_host: str | None = None,
    web_port: int | None = None,
    role: str = "all",
    instance: str = "",
    bus_url: str = "",
) -> Parts:
    """Start the parts of ``role`` (``roles.PARTS``): ingest, routing, the site's jobs (retention, the
    watchlist push) and (unless ``web`` is false) the web page, in the order that loses nothing (every hook
    is registered before ingest's first message); ``running`` stops them in reverse. Each part is handed
    what it uses: nothing is set on ``central`` once they run. A split role (not ``all``) relays live updates
    through ``bus_url`` and runs routing only while it leads."""
    if role not in PARTS:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(PARTS)}")
    config = central.config
    parts = PARTS[role]
    running.callback(central.close)  # last: after every part that uses the database has stopped
    worker = WorkerState(central, role, instance)
    if role != "all":
        # Only a worker with pages listens; the others only tell (docs/scale.md, "Live updates").
        bus = PostgresLiveBus(bus_url, central.hub, listen="web" in parts).start()
        running.callback(bus.stop)

    if role != "all":  # each worker its own MQTT session, kept across its restarts
        config.ingest.client_id = client_id(central, role, instance)
    ingest = IngestService(central) if "ingest" in parts else None
    if role == "all":
        routing = _routing(central)
    elif "web" in parts:  # the leader's, through the store
        routing = RemoteRouting(central)
    else:
        routing = None
    operations = Operations(central, routing)
    if role == "all" and routing is not None:
        running.callback(routing.stop)
    if ingest is not None:
        worker.ingest = ingest
        # Always hooked, routing or not: operations audits every arriving watchlist match.
        for kind in ROUTED_KINDS:
            ingest.on(kind, operations.on_device_message)
        if role != "all":  # routing runs in another process: kept for it in ingest's transaction
            ingest.on_stored(inbox.keep)
        commands.listen(central, ingest)
        ingest.start()
        running.callback(ingest.stop)
    else:  # commands, dispatches and watchlists still go out to the devices
        link = PublishLink(central, config.ingest.client_id).start()
        running.callback(link.stop)
        central.outbound.connect(link.publish)

    if role == "all":
        _start_jobs(central, running)
    elif "routing" in parts:
        worker.leader = RoutingLeader(central, bus_url, lambda jobs: _start_jobs(central, jobs)).start()
        running.callback(worker.leader.stop)

    server = None
    if web and "web" in parts:
        server = _web(central, routing, ingest, web_host, web_port, worker)
        if server is not None:
            running.callback(server.stop)
    worker_http = None
    if server is None and config.worker.metrics_port and role != "all":
        worker_http = _worker_http(worker, config.worker.metrics_host, config.worker.metrics_port)
        running.callback(worker_http.stop)
    return Parts(ingest, routing, server, operations, worker, worker.leader, worker_http)


def _start_jobs(central: Central, running: contextlib.ExitStack) -> None:
    """The site's single jobs: retention and the watchlist push (on one process: role all, or the leader)."""
    config = central.config
    retention = Every(config.ingest.retention_interval_s, lambda: _retention(central), "retention")
    running.callback(retention.stop)
    pusher = watchlist_push.pusher_for(central)  # after the way out: it publishes to the cameras
    if pusher is not None:
        pushing = Every(config.watchlist.check_s, pusher.run_once, "watchlist-push")
        running.callback(pushing.stop)


def _worker_http(worker: WorkerState, host: str, port: int) -> WorkerHttp:
    from kuzet.central.web.health import IngestCollector

    registry = CollectorRegistry()
    registry.register(IngestCollector(lambda: worker.ingest))
    registry.register(WorkerCollector(worker))
    return WorkerHttp(worker, host, port, registry).start()


class Every:
    """Calls ``work`` now and then every ``interval_s`` on a thread of its own until stopped; an exception is
    logged and the next round runs as planned."""

    def __init__(self, interval_s: float, work: Callable[[], object], name: str):
        self._interval_s, self._work, self._name = interval_s, work, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._work()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self._name, self._interval_s)
            self._stop.wait(self._interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _retention(central: Central) -> None:
    storage = central.config.storage
    limits = {"retention_days": storage.retention_days, "max_media_gb": storage.max_media_gb}
    objects = MediaStore.for_central(central).objects  # the media folder or the S3 bucket
    if central.store.backend == "sqlite":
        apply_retention(central.db(), objects, **limits)
        return
    # PostgreSQL: expired months dropped whole, and the coming months' partitions made before they are due.
    run_on_postgresql(central.store, objects, **limits)
    central.store.ensure_partitions()


def _routing(central: Central):
    try:
        from kuzet.central.routing.service import RoutingService
    except ImportError as exc:
        log.warning("routing is not installed (%s): events will not be sent to patrols", exc)
        return None
    return RoutingService(central).start()


def _web(central: Central, routing, ingest, host: str | None, port: int | None, worker: WorkerState):
    try:
        from kuzet.central.web.server import WebServer
    except ImportError as exc:
        log.error("the web page is not installed (%s): central runs without it", exc)
        return None
    return WebServer(
        central, host=host, port=port, routing_service=routing, ingest=ingest, worker=worker
    ).start()


@contextlib.contextmanager
def _signals_set(stop: threading.Event):
    """SIGINT and SIGTERM set ``stop`` (only the main thread may install handlers; elsewhere the caller stops)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
