"""``/healthz`` for the load balancer or systemd watchdog, and Prometheus ``/metrics``.

``/healthz`` answers 200 only when central can do its job: the database answers and can be written, ingest is
connected to the broker and subscribed, its writer thread is alive and storing, its queue is not full, the media
folder takes files, and the data and media disks have ``[storage] min_free_mb`` free. Otherwise 503, with
the problems named. A process that serves the page without ingest (none started) is not healthy either.

Metrics are of this app only (its own registry, so that several apps in one process — tests — do not clash):
HTTP requests by endpoint and status; ingest's counters and histograms, read from the running service at
scrape time; and gauges read from the database (open events, devices, dispatches, alerts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kuzet.central.ingest.metrics import DEAD_LETTER_CAUSES
from kuzet.central.ingest.store_health import disk_problems, disks
from kuzet.central.store import portable, queries
from kuzet.central.web.auth import require
from kuzet.central.web.services import KEY, services
from kuzet.central.web.views import central
from kuzet.central.worker_http import WorkerCollector

if TYPE_CHECKING:
    from kuzet.central.ingest.service import IngestService

blueprint = Blueprint("health", __name__)

# Ingest's counters as Prometheus counters: (attribute of Counters, metric name, help).
_INGEST_COUNTERS = (
    ("received", "kuzet_ingest_received", "Messages taken from MQTT"),
    ("stored", "kuzet_ingest_stored", "Valid messages stored by ingest (duplicates not counted)"),
    (
        "handed_on",
        "kuzet_ingest_handed_on",
        "Valid messages handed to routing or commands, not stored by ingest",
    ),
    ("duplicates", "kuzet_ingest_duplicates", "Event messages already stored: nothing changed"),
    ("timeline_only", "kuzet_ingest_timeline_only", "Event messages older than the stored state"),
    ("batches", "kuzet_ingest_batches", "SQLite transactions committed by ingest"),
    ("hook_errors", "kuzet_ingest_hook_errors", "Hooks (routing, commands) that failed on a message"),
)


class IngestCollector:
    """Ingest's counters, histograms and queue, read from the running service whenever Prometheus scrapes
    (``ingest()`` gives it: a web app's, or an ingest worker's own, ``central.worker_http``)."""

    def __init__(self, ingest: Callable[[], IngestService | None]):
        self._ingest = ingest

    def collect(self):
        ingest = self._ingest()
        if ingest is None:
            return
        counters = ingest.counters
        for attribute, name, text in _INGEST_COUNTERS:
            yield CounterMetricFamily(name, text, value=getattr(counters, attribute))
        letters = CounterMetricFamily(
            "kuzet_ingest_dead_letters", "Messages dead-lettered, by cause", labels=["reason"]
        )
        for cause in DEAD_LETTER_CAUSES:
            letters.add_metric([cause], counters.dead_letters_by_cause[cause])
        yield letters
        clips = CounterMetricFamily(
            "kuzet_ingest_clips",
            "Clips and evidence segments by outcome: verified, failed (asked for again), lost (never coming)",
            labels=["outcome"],
        )
        clips.add_metric(["verified"], counters.clips_verified)
        clips.add_metric(["failed"], counters.clips_failed)
        clips.add_metric(["lost"], counters.clips_lost)
        yield clips
        yield CounterMetricFamily(
            "kuzet_ingest_clip_chunks_rejected",
            "Clip chunks that contradicted their clip (dead-lettered)",
            value=counters.clip_chunks_rejected,
        )
        yield from ingest.histograms.collect()
        health = ingest.health()
        yield GaugeMetricFamily(
            "kuzet_ingest_queue_depth", "Messages waiting for the writer", health["queue_depth"]
        )
        yield GaugeMetricFamily("kuzet_ingest_queue_max", "Capacity of the ingest queue", health["queue_max"])
        yield GaugeMetricFamily(
            "kuzet_ingest_mqtt_connected",
            "1 while ingest is connected to the broker",
            int(health["mqtt"]["connected"]),
        )
        yield GaugeMetricFamily(
            "kuzet_ingest_writer_alive", "1 while the ingest writer thread runs", int(health["writer_alive"])
        )
        yield GaugeMetricFamily(
            "kuzet_ingest_media_queue_depth",
            "Snapshots and clip chunks of committed batches waiting for the media thread",
            health["media_queue_depth"],
        )
        free = GaugeMetricFamily("kuzet_disk_free_bytes", "Free bytes of central's disks", labels=["disk"])
        for disk in disks(ingest.central):
            free.add_metric([disk["name"]], disk.get("free_bytes", 0))
        yield free


class _DatabaseCollector:
    """Gauges computed from the database whenever Prometheus scrapes."""

    def __init__(self, app: Flask):
        self._app = app

    def collect(self):
        the_central = self._app.extensions[KEY].central
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
        counted = queries.gauges(db)
        dispatches = GaugeMetricFamily("kuzet_dispatches", "Dispatches by state", labels=["state"])
        for state, count in counted["dispatches"].items():
            dispatches.add_metric([state], count)
        yield dispatches
        yield GaugeMetricFamily(
            "kuzet_dispatch_escalations",
            "Dispatches that are a later attempt for their event (the unit before declined or did not answer)",
            value=counted["escalations"],
        )
        alerts = GaugeMetricFamily("kuzet_alerts_open", "Alerts not yet acknowledged", labels=["level"])
        for level, count in counted["alerts_open"].items():
            alerts.add_metric([level], count)
        yield alerts
        yield GaugeMetricFamily(
            "kuzet_dead_letters",
            "Messages kept because they broke the contract",
            value=counted["dead_letters"],
        )
        yield GaugeMetricFamily(
            "kuzet_audit_entries", "Entries in the audit log", value=counted["audit_entries"]
        )
        yield GaugeMetricFamily(
            "kuzet_live_streams", "Open live page streams", value=the_central.hub.subscribers
        )


def init_metrics(app: Flask) -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "kuzet_http_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=registry
    )
    registry.register(IngestCollector(lambda: app.extensions[KEY].ingest))
    registry.register(_DatabaseCollector(app))
    if (worker := app.extensions[KEY].worker) is not None:
        registry.register(WorkerCollector(worker))
    app.extensions[KEY].metrics = registry

    @app.after_request
    def _count(response):
        requests.labels(request.endpoint or "unknown", request.method, str(response.status_code)).inc()
        return response


@blueprint.get("/healthz")
def healthz():
    the_central = central()
    problems: list[str] = []
    try:
        queries.ping(the_central.db())
        database = "ok"
    except Exception as exc:
        if not portable.is_database_error(exc):
            raise
        database = str(exc)
        problems.append(f"the database does not answer: {exc}")
    disk_report = disks(the_central)
    problems += disk_problems(the_central, disk_report)
    ingest, worker = services().ingest, services().worker
    if ingest is None:
        ingest_state = None
        if worker is None or worker.role != "web":  # a web worker's ingest runs in other processes
            problems.append("ingest is not running in this process: nothing from the devices is stored")
    else:
        ingest_state = ingest.health()
        problems += ingest_state.pop("problems")
    body = {
        "status": "unhealthy" if problems else "ok",
        "problems": problems,
        "database": database,
        "ingest": ingest_state,
        "disks": disk_report,
        "live_streams": the_central.hub.subscribers,
        "role": worker.role if worker else "all",
    }
    return jsonify(body), 503 if problems else 200


@blueprint.get("/metrics")
@require("devices.view")
def metrics():
    return Response(generate_latest(services().metrics), mimetype=CONTENT_TYPE_LATEST)
