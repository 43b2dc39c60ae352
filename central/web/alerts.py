"""Alerts for the operators, kept until someone acknowledges them: the list page, its API, and the
acknowledgement (audited). The header counts the ones nobody has acknowledged yet.

The page folds alerts of one condition (the same level and device condition, or the same words) into one row
with a count and one button for all of them: 79 "no free unit" alerts are one line, not 79. The API lists
every alert as stored."""

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
    rows = alerts.listing(central().db(), open_only=not show_all)
    return render_template("alerts.html", alerts=fold(rows), show_all=show_all)


def fold(rows: list[dict]) -> list[dict]:
    """Rows of one condition (newest first in, newest first out) as one: the newest row, with ``ids`` (every
    alert folded into it), ``count`` (repeats included), ``first_at`` and up to five ``event_ids``."""
    folded: dict[tuple, dict] = {}
    for row in rows:
        key = (row["level"], row.get("condition") or row["message"], bool(row.get("acknowledged_at")))
        into = folded.get(key)
        if into is None:
            folded[key] = {
                **row,
                "ids": [row["id"]],
                "count": row.get("count") or 1,
                "first_at": row["at"],
                "event_ids": [row["event_id"]] if row.get("event_id") else [],
            }
            continue
        into["ids"].append(row["id"])
        into["count"] += row.get("count") or 1
        into["first_at"] = min(into["first_at"], row["at"])
        if row.get("event_id") and row["event_id"] not in into["event_ids"] and len(into["event_ids"]) < 5:
            into["event_ids"].append(row["event_id"])
    return list(folded.values())


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
