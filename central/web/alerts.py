"""Alerts for the operators, kept until someone acknowledges them: the list page, its API, and the
acknowledgement (audited). The header counts the ones nobody has acknowledged yet."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from kuzet.central import alerts
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.params import Choice, Int
from kuzet.central.web.services import services
from kuzet.central.web.views import central

blueprint = Blueprint("alerts", __name__)
STATE = Choice("state", ("open", "all"), "open", "open (default) or all")
LIMIT = Int("limit", 200, 1, 1000, "at most this many alerts (default 200, max 1000)")


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
    state = STATE.read()
    limit = LIMIT.read()
    db = central().db()
    return jsonify(alerts=alerts.listing(db, state == "open", limit), open=alerts.open_count(db))


@blueprint.post("/api/v1/alerts/<alert_id>/ack")
@require("events.act")
def acknowledge(alert_id: str):
    if not alert_id.isdigit() or len(alert_id) > 18:  # beyond any alert's number (and SQLite's integers)
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
