"""The event queue (the page operators watch), an event's detail, the operators' actions, and evidence
media. Every opening of an event and every view of its snapshot or clip is written to the audit log."""

from __future__ import annotations

import hashlib

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _

from kuzet.central.auth import audit, users
from kuzet.central.store import integrity, queries, workflow
from kuzet.central.web import i18n, media_proxy
from kuzet.central.web import timeline as track_timeline
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.services import services
from kuzet.central.web.views import central

blueprint = Blueprint("events", __name__)


@blueprint.get("/")
@require(None)
def queue():
    if not current_user().can("events.view"):
        return redirect(url_for("devices.page"))  # a technician's start page
    db = central().db()
    filters = {key: request.args.get(key, "") for key in queries.EVENT_FILTERS}
    if not request.args:
        filters["status"] = "open"  # what needs attention; "all" is one click away
    return render_template(
        "queue.html",
        choices=services().filter_menus.get(db),
        counters=queries.queue_counters(db),
        filters=filters,
    )


@blueprint.get("/events/<event_id>")
@require("events.view")
def detail(event_id: str):
    db = central().db()
    event = queries.get_event(db, event_id)
    if event is None:
        abort(404, _("No event %(id)s.", id=event_id))
    audit.append(db, current_user().username, "event.view", f"event:{event_id}", {})
    return render_template(
        "event.html",
        event=event,
        camera=queries.get_device(db, event["device"]),
        **_evidence(db, event),
        dispatches=i18n.with_notes(queries.dispatch_history(db, event_id)),  # as the live reload shows them
        viewers=queries.viewers(db, event_id),
        assignees=[u for u in users.list_users(db) if not u["disabled"]],
        map_config=central().config.map,
        routing_config=central().config.routing,
    )


@blueprint.get("/events/<event_id>/evidence-panels")
@require("events.view")
def evidence_panels(event_id: str):
    """The clip, snapshot and timeline panels alone, for the open page to redraw when evidence arrives (not
    audited: opening the page was; each media file's view is, when the browser fetches it)."""
    db = central().db()
    event = queries.get_event(db, event_id)
    if event is None:
        abort(404, _("No event %(id)s.", id=event_id))
    context = _evidence(db, event)
    return render_template("_event_evidence.html", **context)


def _evidence(db, event: dict) -> dict:
    """What the evidence panels show, with a signature that changes whenever what they show changes."""
    media = queries.event_media(db, event)
    timeline = queries.event_timeline(db, event["event_id"])
    clip = media["clip"] or {}
    # One signature per panel: the page replaces only a panel whose signature changed (a clip being watched
    # is not reset by a track update).
    parts = {
        "clip": (clip.get("state"), clip.get("received"), (media["clip_media"] or {}).get("sha256")),
        "snapshot": ((media["snapshot"] or {}).get("sha256"),),
        "track": (len(timeline), timeline[-1]["seq"] if timeline else None),
    }
    signatures = {name: hashlib.sha256(repr(part).encode()).hexdigest()[:12] for name, part in parts.items()}
    return {
        "media": media,
        "timeline": timeline,
        "track": track_timeline.layout(timeline),
        "lost_clip": lost_clip,
        "site_timezone": central().config.site.timezone,
        "signatures": signatures,
    }


# Why a camera will never send a clip (``clips.lost_reason``: "<reason>[: <detail>]", from its clip_lost).
_LOST_CLIP = {
    "interrupted": "interrupted when the camera restarted",
    "failed": "the camera could not record or store it",
    "quota": "dropped on the camera, to keep within its disk quota, before it could be sent",
    "gone": "no longer on the camera when central asked for it again",
}


def lost_clip(lost_reason: str | None) -> dict:
    """What to tell the operator about a lost clip: {"summary": ..., "detail": the camera's own words}."""
    reason, _, detail = (lost_reason or "").partition(": ")
    return {"summary": _LOST_CLIP.get(reason, reason or "no reason given"), "detail": detail}


def _act(event_id: str, change):
    """``change(operations, actor)``: one of the operators' actions, through the one door."""
    try:
        change(services().operations, current_user().username)
    except workflow.NotFound as exc:
        abort(404, str(exc))
    except workflow.WorkflowError as exc:
        flash(_("Refused: %(why)s", why=exc), "error")
    return redirect(url_for("events.detail", event_id=event_id))


@blueprint.post("/events/<event_id>/ack")
@require("events.act")
def acknowledge(event_id: str):
    return _act(event_id, lambda door, actor: door.acknowledge_event(event_id, actor))


@blueprint.post("/events/<event_id>/assign")
@require("events.act")
def assign(event_id: str):
    assignee = request.form.get("assignee", "")
    return _act(event_id, lambda door, actor: door.assign_event(event_id, actor, assignee))


@blueprint.post("/events/<event_id>/close")
@require("events.act")
def close(event_id: str):
    note = request.form.get("note", "")
    return _act(event_id, lambda door, actor: door.close_event(event_id, actor, note))


@blueprint.post("/events/<event_id>/hold")
@require("events.hold")
def hold(event_id: str):
    keep = request.form.get("hold", "1") == "1"
    return _act(event_id, lambda door, actor: door.hold_event(event_id, actor, keep))


def _is_first_request_of_a_view() -> bool:
    # A video player fetches a clip in many byte ranges; a view is audited once, at its first byte.
    header = request.headers.get("Range", "")
    return not header or header.replace(" ", "").startswith("bytes=0-")


@blueprint.get("/media/<sha256>")
@require("events.media")
def media(sha256: str):
    db = central().db()
    row = queries.media(db, sha256)
    store = services().media
    local = store.objects.kind == "local"
    path = store.path(sha256) if local else None
    if row is None or (local and path is None):
        abort(404, _("No such media (it may have been removed by retention)."))
    if local:
        try:  # evidence is served only as it arrived: its bytes must still hash to its name
            path = integrity.checked(db, store.root, row)
        except integrity.MediaAltered as exc:
            abort(409, _("Media %(sha)s is not served: %(why)s (an alert was raised).", sha=sha256, why=exc))
    else:  # in the object store: found there (404, 503) before the view is audited
        size = media_proxy.stored_size(store, sha256)
    if _is_first_request_of_a_view():
        target = f"event:{row['event_id']}" if row.get("event_id") else f"media:{sha256}"
        audit.append(
            db, current_user().username, "media.view", target, {"sha256": sha256, "kind": row["kind"]}
        )
    if not local:  # in an object store: streamed through here (central.web.media_proxy)
        response = media_proxy.stream(store, db, row, size, request.headers.get("Range", ""))
        response.headers["Cache-Control"] = "private, no-store"
        return response
    response = send_file(path, mimetype=row["content_type"], conditional=True, etag=sha256)
    response.headers["Cache-Control"] = "private, no-store"  # evidence stays off shared workstations' disks
    return response
