"""``kuzet central run``: the broker (when embedded), ingest, routing, retention and the web page, in one
process, until Ctrl-C or SIGTERM stops them all in the reverse order they started."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kuzet.central import commands
from kuzet.central.broker import EmbeddedBroker
from kuzet.central.context import Central
from kuzet.central.ingest.service import IngestService
from kuzet.central.operations import ROUTED_KINDS, Operations
from kuzet.central.store.media import MediaStore
from kuzet.central.store.retention import apply_retention, run_on_postgresql
from kuzet.central.watchlist import push as watchlist_push

log = logging.getLogger(__name__)


def serve(central: Central, stop: threading.Event | None = None) -> int:
    """Run central until ``stop`` is set (or a signal arrives); returns the process exit status."""
    stop = stop or threading.Event()
    config = central.config
    if config.broker.embedded and config.ingest.share_group:
        log.error("the embedded broker (amqtt) has no shared subscriptions: remove [ingest] share_group")
        return 2
    with contextlib.ExitStack() as running, _signals_set(stop):
        if config.broker.embedded:
            if config.mqtt.protocol != "3.1.1":
                log.warning("the embedded broker speaks MQTT 3.1.1 only; central uses 3.1.1 with it")
                config.mqtt.protocol = "3.1.1"
            broker = EmbeddedBroker(config.broker.host, config.broker.port).start()
            running.callback(broker.stop)
            log.info("embedded MQTT broker (demo only) on %s", broker.url)

        start_parts(central, running)
        log.info("central %r is running; Ctrl-C stops it", config.central.site)
        stop.wait()
        log.info("central is stopping")
    return 0


@dataclass
class Parts:
    """Central's running parts, for whoever started them (``serve``, tests, the demo)."""

    ingest: IngestService
    routing: object | None  # central.routing.service.RoutingService, when routing is installed
    web: object | None  # central.web.server.WebServer, when the page is installed
    operations: Operations  # the one door for every change (central.operations)


def start_parts(
    central: Central,
    running: contextlib.ExitStack,
    *,
    web: bool = True,
    web_host: str | None = None,
    web_port: int | None = None,
) -> Parts:
    """Start ingest, routing, device commands, retention and (unless ``web`` is false) the web page, in the
    order that loses nothing (every hook is registered before ingest's first message); ``running`` stops
    them in reverse. Each part is handed what it uses: nothing is set on ``central`` once they run."""
    config = central.config
    running.callback(central.close)  # last: after every part that uses the database has stopped
    ingest = IngestService(central)
    routing = _routing(central)
    operations = Operations(central, routing)
    if routing is not None:
        running.callback(routing.stop)
    # Always hooked, routing or not: operations audits every arriving watchlist match.
    for kind in ROUTED_KINDS:
        ingest.on(kind, operations.on_device_message)
    commands.listen(central, ingest)
    ingest.start()
    running.callback(ingest.stop)

    retention = Every(config.ingest.retention_interval_s, lambda: _retention(central), "retention")
    running.callback(retention.stop)

    pusher = watchlist_push.pusher_for(central)  # after ingest: it publishes through ingest's link
    if pusher is not None:
        pushing = Every(config.watchlist.check_s, pusher.run_once, "watchlist-push")
        running.callback(pushing.stop)

    server = _web(central, routing, ingest, web_host, web_port) if web else None
    if server is not None:
        running.callback(server.stop)
    return Parts(ingest, routing, server, operations)


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


def _web(central: Central, routing, ingest: IngestService, host: str | None, port: int | None):
    try:
        from kuzet.central.web.server import WebServer
    except ImportError as exc:
        log.error("the web page is not installed (%s): central runs without it", exc)
        return None
    return WebServer(central, host=host, port=port, routing_service=routing, ingest=ingest).start()


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
