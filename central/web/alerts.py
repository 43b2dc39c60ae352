"""Alerts for the operators, kept until someone acknowledges them: the list page, its API, and the
acknowledgement (audited). The header counts the ones nobody has acknowledged yet."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from kuzet.central import alerts
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.services import services
from kuzet.central.web.views import central

blueprint = Blueprint("alerts", __name__)


@blueprint.get("/alerts")
@require("events.view")
def page():
    show_all = request.args.get("state") == "all"
    return render_template(
        "alerts.html", alerts=alerts.listing(central().db(), open_only=not show_all), show_all=show_all
    )


@blueprint.get("/api/v1/alerts")
@require("events.view")
def listing():
    state = request.args.get("state", "open")
    if state not in ("open", "all"):
        return _error("state is open or all", 400)
    limit = min(max(request.args.get("limit", 200, type=int), 1), 1000)
    db = central().db()
    return jsonify(alerts=alerts.listing(db, state == "open", limit), open=alerts.open_count(db))


@blueprint.post("/api/v1/alerts/<alert_id>/ack")
@require("events.act")
def acknowledge(alert_id: str):
    if not alert_id.isdigit():
        return _error(f"no alert {alert_id}", 404)
    try:
        row = services().operations.acknowledge_alert(int(alert_id), current_user().username)
    except alerts.AlertError as exc:
        return _error(str(exc), 404)
    return jsonify(row)


def _error(message: str, status: int):
    response = jsonify(error=message)
    response.status_code = status
    return response
