"""``/healthz`` for the load balancer or systemd watchdog, and Prometheus ``/metrics``.

Metrics are of this app only (its own registry, so that several apps in one process — tests — do not clash):
HTTP requests by endpoint and status, and gauges read from the database at scrape time.
"""

from __future__ import annotations

import sqlite3

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily

from central.store import queries
from central.web.auth import require
from central.web.views import central

blueprint = Blueprint("health", __name__)


class _DatabaseCollector:
    """Gauges computed from the database whenever Prometheus scrapes."""

    def __init__(self, app: Flask):
        self._app = app

    def collect(self):
        the_central = self._app.extensions["kuzet"]
        db = the_central.db()
        open_events = GaugeMetricFamily("kuzet_events_open", "Events not yet closed", labels=["severity"])
        for severity, count in queries.queue_counters(db)["by_severity"].items():
            open_events.add_metric([severity], count)
        yield open_events
        devices = GaugeMetricFamily(
            "kuzet_devices", "Registered devices by kind and state", labels=["kind", "state"]
        )
        tally: dict[tuple[str, str], int] = {}
        for device in queries.list_devices(db):
            state = "revoked" if device.get("revoked_at") else ("online" if device["online"] else "offline")
            key = (device.get("kind") or "unknown", state)
            tally[key] = tally.get(key, 0) + 1
        for (kind, state), count in sorted(tally.items()):
            devices.add_metric([kind, state], count)
        yield devices
        yield GaugeMetricFamily(
            "kuzet_dead_letters",
            "Messages kept because they broke the contract",
            value=db.execute("SELECT count(*) FROM dead_letters").fetchone()[0],
        )
        yield GaugeMetricFamily(
            "kuzet_audit_entries",
            "Entries in the audit log",
            value=db.execute("SELECT count(*) FROM audit").fetchone()[0],
        )
        yield GaugeMetricFamily(
            "kuzet_live_streams", "Open live page streams", value=the_central.hub.subscribers
        )


def init_metrics(app: Flask) -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "kuzet_http_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=registry
    )
    registry.register(_DatabaseCollector(app))
    app.extensions["kuzet.metrics"] = registry

    @app.after_request
    def _count(response):
        requests.labels(request.endpoint or "unknown", request.method, str(response.status_code)).inc()
        return response


@blueprint.get("/healthz")
def healthz():
    the_central = central()
    try:
        the_central.db().execute("SELECT 1 FROM events LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        return jsonify(status="unhealthy", database=str(exc)), 503
    return jsonify(status="ok", database="ok", live_streams=the_central.hub.subscribers)


@blueprint.get("/metrics")
@require("devices.view")
def metrics():
    return Response(generate_latest(current_app.extensions["kuzet.metrics"]), mimetype=CONTENT_TYPE_LATEST)
