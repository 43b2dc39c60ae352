"""Serving the page with waitress (a production WSGI server) on central's ``[http]`` address.

``WebServer`` runs it on a thread so that ``kuzet central run`` (and the tests) can run ingest and routing
beside it and stop everything cleanly.
"""

from __future__ import annotations

import logging
import threading
import time

from waitress.server import create_server

from kuzet.central.context import Central
from kuzet.central.web import create_app
from kuzet.central.web.services import KEY, Services

log = logging.getLogger(__name__)


class WebServer:
    def __init__(
        self,
        central: Central,
        host: str | None = None,
        port: int | None = None,
        routing_service=None,
        ingest=None,
        worker=None,
    ):
        """``routing_service``: the running ``RoutingService``, which the dispatch endpoints act through;
        ``ingest``: the running ingest, and ``worker`` this process's role, for /healthz and /metrics."""
        http = central.config.http
        services = Services.for_central(central, routing_service, ingest, worker)
        self.app = create_app(central, services=services)
        self._server = create_server(
            self.app,
            host=host or http.host,
            port=http.port if port is None else port,
            threads=http.threads + http.streams,  # a stream never takes a request's thread (stream.py)
            connection_limit=http.connections,
            asyncore_use_poll=True,  # select() takes no descriptor above 1023
            ident="kuzet",
            channel_timeout=3600,  # live streams stay open all shift; keep-alives travel every 15 s
        )
        self._thread = threading.Thread(target=self._server.run, name="kuzet-web", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.effective_host}:{self._server.effective_port}"

    def start(self) -> WebServer:
        self.app.extensions[KEY].board.start()  # pushes each change of the open incidents to the boards
        self._thread.start()
        log.info("web page on %s", self.url)
        return self

    def stop(self) -> None:
        # End the live streams first (each notices within one keep-alive period), so that no request thread
        # is left writing to a closed server.
        services: Services = self.app.extensions[KEY]
        services.closing.set()
        services.board.stop()
        hub = services.central.hub
        deadline = time.monotonic() + self.app.config["SSE_HEARTBEAT_S"] + 1
        while hub.subscribers and time.monotonic() < deadline:
            time.sleep(0.05)
        self._server.task_dispatcher.shutdown(timeout=5)  # lets requests in progress finish
        self._server.trigger.pull_trigger(self._close_everything)
        self._thread.join(timeout=5)

    def _close_everything(self) -> None:
        # Runs on the server's own loop thread (through its trigger): sockets closed from another thread would
        # be pulled from under its select(). Connections first, then the listener with its trigger; the loop
        # ends when nothing is left.
        server = self._server
        for dispatcher in list(server._map.values()):
            if dispatcher is not server and dispatcher is not server.trigger:
                dispatcher.handle_close()
        server.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
