"""The triage board: events folded into incidents (``central.store.incidents``), most urgent first, with bulk
acknowledge and close, and each operator's interruption settings (sound, desktop notifications).

``GET /api/v1/incidents`` lists them (filters: severity, type, device, zone, status; a time range ``since`` /
``until`` searches closed ones too): the open ones from the board kept current per change
(``central.web.board``), which also pushes every change to the open boards; a severity filter (which folds
only that severity's events) or a time range reads the store; ``POST /api/v1/incidents/ack`` and ``/close`` act on a list of event ids
through the one door, each event on its own: what cannot be done (already acknowledged, closed) is reported
back, not fatal to the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flask import Blueprint, Response, jsonify, render_template, request
from flask_babel import gettext as _
from pydantic import Field

from kuzet.central.auth import preferences
from kuzet.central.store import incidents, workflow
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.params import ULID_PATTERN, Body, Required, body, refuse
from kuzet.central.web.services import services
from kuzet.central.web.views import central
from kuzet.shared import timeutil

blueprint = Blueprint("incidents", __name__)

MAX_LISTED = 300
# Only these interrupt an operator (a sound and a desktop notification); the rest wait quietly on the board.
INTERRUPTING = ("critical", "high")

EventIds = Annotated[
    list[Annotated[str, Field(pattern=f"^{ULID_PATTERN}$")]], Field(min_length=1, max_length=1000)
]


class BulkBody(Body):
    event_ids: EventIds


class BulkCloseBody(BulkBody):
    note: Required(workflow.MAX_NOTE)


class PreferencesBody(Body):
    sound: bool | None = None
    notifications: bool | None = None


def _time(name: str) -> str | None:
    """A time from the query string: ISO-8601 with its offset, or a local time in the site's time zone as the
    board's filter takes it from a person ('05.12.2026 13:05', i18n.parse_typed)."""
    if name not in request.args:
        return None
    value = request.args[name].strip()
    try:
        when = i18n.parse_typed(value, with_time=True)
    except ValueError:
        example = i18n.typed_day(datetime(2026, 12, 31)) + " 08:00"
        field = _("From") if name == "since" else _("To")  # as the board labels the field
        refuse(
            _(
                "%(field)s (%(name)s): %(value)s is not a date and time such as %(example)s",
                field=field,
                name=name,
                value=repr(value),
                example=example,
            )
        )
    if when.tzinfo is None:
        when = when.replace(tzinfo=i18n.site_zone())
    return timeutil.to_wire(when)


@blueprint.get("/incidents")
@require("events.view")
def page():
    user = current_user()
    return render_template(
        "incidents.html",
        choices=services().filter_menus.get(central().db()),
        prefs=preferences.get(central().db(), user.username),
        window_s=central().config.triage.window_s,
        interrupting=INTERRUPTING,
    )


@blueprint.get("/api/v1/incidents")
@require("events.view")
def list_incidents():
    since, until = _time("since"), _time("until")
    filters = {key: request.args.get(key, "") for key in incidents.FILTERS}
    window_s = central().config.triage.window_s
    if not (since or until or filters["severity"]):
        return Response(services().board.listing_json(filters, MAX_LISTED), mimetype="application/json")
    found = incidents.open_incidents(
        central().db(),
        central().config.triage.window_s,
        filters=filters,
        since=since,
        until=until,
        include_closed=bool(since or until),
    )
    return jsonify(
        incidents=[incident.as_json() for incident in found[:MAX_LISTED]],
        total=len(found),
        window_s=window_s,
        limit=MAX_LISTED,
    )


def _each(event_ids: list[str], change) -> dict:
    done, skipped = [], []
    actor = current_user().username
    for event_id in dict.fromkeys(event_ids):  # once each, in the order sent
        try:
            change(services().operations, actor, event_id)
        except (workflow.WorkflowError, workflow.NotFound) as exc:
            skipped.append({"event_id": event_id, "reason": str(exc)})
        else:
            done.append(event_id)
    return {"done": done, "skipped": skipped}


@blueprint.post("/api/v1/incidents/ack")
@require("events.act")
def acknowledge():
    wanted = body(BulkBody)
    return jsonify(
        _each(wanted.event_ids, lambda door, actor, event_id: door.acknowledge_event(event_id, actor))
    )


@blueprint.post("/api/v1/incidents/close")
@require("events.act")
def close():
    wanted = body(BulkCloseBody)
    return jsonify(
        _each(wanted.event_ids, lambda door, actor, event_id: door.close_event(event_id, actor, wanted.note))
    )


@blueprint.post("/preferences")
@require(None)
def save_preferences():
    """The board's switches for sound and desktop notifications, kept with the account."""
    wanted = body(PreferencesBody)
    changes = {key: value for key, value in wanted.model_dump().items() if value is not None}
    if not changes:
        refuse(_("Nothing to change."))
    saved = preferences.update(central().db(), current_user().username, **changes)
    return jsonify(sound=saved.sound, notifications=saved.notifications)
