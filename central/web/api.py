"""The JSON API under /api/v1/ (described in openapi.py): what the page shows, for tools and scripts.

Authenticated by the page's session (with the X-CSRFToken header for changes) or ``Authorization: Bearer``.
"""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, jsonify, request
from flask_babel import gettext as _
from pydantic import ValidationError

from kuzet.central.auth import audit, users
from kuzet.central.store import queries, registry, workflow
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.params import INT64_MAX, Body, Choice, Int, Required, Text, body, problems, refuse
from kuzet.central.web.services import services
from kuzet.central.web.views import central

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

# What the endpoints read from the query string and their bodies (params.py; openapi.py documents them).
LIMIT = Int(
    "limit", 200, 1, queries.MAX_LIMIT, f"at most this many rows (default 200, max {queries.MAX_LIMIT})"
)
BEFORE_SEQ = Int("before", 0, 0, INT64_MAX, "sequence number to page back from (0: the newest)")
PERIOD = Choice("period", tuple(queries.STAT_PERIODS), "hour", "the buckets")
GROUP_BY = Choice("by", tuple(queries.STAT_GROUPS), "type", "the groups")


class AssignBody(Body):
    assignee: Required(64)


class CloseBody(Body):
    note: Required(workflow.MAX_NOTE)


class HoldBody(Body):
    hold: bool = True


class RevokeBody(Body):
    reason: Text(2000) = ""


class ReinstateBody(Body):
    reason: Required(2000)


def media_urls(media: dict) -> dict:
    snapshot, clip_media = media["snapshot"], media["clip_media"]
    clip = media["clip"]
    return {
        "snapshot_url": f"/media/{snapshot['sha256']}" if snapshot else None,
        "clip_url": f"/media/{clip_media['sha256']}" if clip_media else None,
        "clip_content_type": clip_media["content_type"] if clip_media else None,
        "clip_state": clip["state"] if clip else None,
        "clip_lost_reason": clip["lost_reason"] if clip and clip["state"] == "lost" else None,
    }


@blueprint.get("/openapi.json")
def openapi_document():
    from kuzet.central.web import openapi  # which describes this module's bodies and parameters

    return jsonify(openapi.document())


@blueprint.get("/me")
@require(None)
def me():
    return jsonify(current_user().as_json())


# --- events -------------------------------------------------------------------------------------------------


@blueprint.get("/events")
@require("events.view")
def list_events():
    filters = {key: request.args.get(key, "") for key in queries.EVENT_FILTERS}
    events = queries.list_events(central().db(), filters, LIMIT.read(), request.args.get("before", ""))
    return jsonify(events=events)


@blueprint.get("/events/counters")
@require("events.view")
def counters():
    return jsonify(queries.queue_counters(central().db()))


@blueprint.get("/events/<event_id>")
@require("events.view")
def get_event(event_id: str):
    db = central().db()
    event = queries.get_event(db, event_id)
    if event is None:
        abort(404, _("No event %(id)s.", id=event_id))
    audit.append(db, current_user().username, "event.view", f"event:{event_id}", {"via": "api"})
    return jsonify(
        event=event,
        timeline=queries.event_timeline(db, event_id),
        media=media_urls(queries.event_media(db, event)),
        dispatches=i18n.with_notes(queries.dispatch_history(db, event_id)),
    )


def _workflow(event_id: str, change):
    """``change(operations, actor)``: one of the operators' actions, through the one door."""
    try:
        event = change(services().operations, current_user().username)
    except workflow.NotFound as exc:
        abort(404, str(exc))
    except workflow.WorkflowError as exc:
        response = jsonify(error=str(exc))
        response.status_code = 409
        return response
    return jsonify(event=event)


@blueprint.post("/events/<event_id>/ack")
@require("events.act")
def acknowledge(event_id: str):
    return _workflow(event_id, lambda door, actor: door.acknowledge_event(event_id, actor))


@blueprint.post("/events/<event_id>/assign")
@require("events.act")
def assign(event_id: str):
    assignee = body(AssignBody).assignee
    return _workflow(event_id, lambda door, actor: door.assign_event(event_id, actor, assignee))


@blueprint.post("/events/<event_id>/close")
@require("events.act")
def close(event_id: str):
    note = body(CloseBody).note
    return _workflow(event_id, lambda door, actor: door.close_event(event_id, actor, note))


@blueprint.post("/events/<event_id>/hold")
@require("events.hold")
def hold(event_id: str):
    keep = body(HoldBody).hold
    return _workflow(event_id, lambda door, actor: door.hold_event(event_id, actor, keep))


# --- devices, units and the map -------------------------------------------------------------------------------


@blueprint.get("/devices")
@require("devices.view")
def list_devices():
    devices = queries.list_devices(central().db())
    return jsonify(devices=[{**d, "problem_words": i18n.problem_words(d)} for d in devices])


@blueprint.post("/devices")
@require("devices.manage")
def register_device():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        refuse("send a JSON object with Content-Type: application/json")
    try:
        registration = registry.Registration.model_validate(data, strict=True)
    except ValidationError as exc:
        refuse(problems(exc))
    try:
        device, created = services().operations.register_device(registration, current_user().username)
    except registry.DeviceRevoked as exc:
        abort(409, str(exc))
    return jsonify(device), 201 if created else 200


@blueprint.get("/devices/<device_id>")
@require("devices.view")
def get_device(device_id: str):
    device = queries.get_device(central().db(), device_id)
    if device is None:
        abort(404, _("No device %(id)s.", id=device_id))
    return jsonify(device)


@blueprint.post("/devices/<device_id>/revoke")
@require("devices.manage")
def revoke_device(device_id: str):
    reason = body(RevokeBody, optional=True).reason
    device = services().operations.revoke_device(device_id, current_user().username, reason)
    if device is None:
        abort(404, _("No device %(id)s.", id=device_id))
    return jsonify(device)


@blueprint.post("/devices/<device_id>/reinstate")
@require("devices.manage")
def reinstate_device(device_id: str):
    """Lift a revocation on purpose, with a reason (audited); re-registering alone never does."""
    reason = body(ReinstateBody).reason
    try:
        device = services().operations.reinstate_device(device_id, current_user().username, reason)
    except ValueError as exc:  # not revoked
        refuse(str(exc), 409)
    if device is None:
        abort(404, _("No device %(id)s.", id=device_id))
    return jsonify(device)


@blueprint.get("/map")
@require("map.view")
def map_data():
    db = central().db()
    user = current_user()
    return jsonify(
        devices=queries.list_devices(db),
        units=queries.list_units(db),
        events=queries.map_events(db) if user.can("events.view") else [],
        dispatches=queries.routing_reads(db).active() if user.can("events.view") else [],
    )


# --- statistics, audit, dead letters, users -----------------------------------------------------------------


def _stats_args() -> dict:
    counts = queries.event_counts(central().db(), PERIOD.read(), GROUP_BY.read(), zone=i18n.site_zone())
    return {**counts, "timezone": central().config.site.timezone}


@blueprint.get("/stats")
@require("stats.view")
def stats():
    return jsonify(_stats_args())


@blueprint.get("/stats.csv")
@require("stats.view")
def stats_csv():
    """For people (a spreadsheet): headers and names in the reader's language, buckets in the site's zone,
    with a byte-order mark so that spreadsheet programs read the Cyrillic right."""
    counts = _stats_args()
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    period = {"hour": _("Hour (%(zone)s)"), "day": _("Day (%(zone)s)")}[counts["period"]]
    writer.writerow(
        [period % {"zone": counts["timezone"]}, i18n.label(i18n.STAT_GROUPS, counts["by"]), _("Events")]
    )
    names = {"type": i18n.EVENT_TYPES, "severity": i18n.SEVERITIES}.get(counts["by"], {})
    for group in counts["groups"]:
        for bucket, count in zip(counts["buckets"], counts["counts"][group], strict=True):
            writer.writerow([bucket, i18n.label(names, group), count])
    filename = f"kuzet-events-per-{counts['period']}-by-{counts['by']}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@blueprint.get("/audit")
@require("audit.read")
def audit_entries():
    entries = audit.entries(
        central().db(),
        target=request.args.get("target"),
        actor=request.args.get("actor"),
        action=request.args.get("action"),
        before_seq=BEFORE_SEQ.read(),
        limit=LIMIT.read(),
    )
    return jsonify(entries=entries)


@blueprint.get("/audit/verify")
@require("audit.read")
def audit_verify():
    ok, bad_seq = audit.verify(central().db())
    return jsonify(ok=ok, first_bad_seq=bad_seq)


@blueprint.get("/dead-letters")
@require("dead_letters.view")
def dead_letters():
    return jsonify(dead_letters=queries.dead_letters(central().db(), LIMIT.read()))


@blueprint.get("/users")
@require("users.read")
def list_users():
    return jsonify(users=users.list_users(central().db()))
