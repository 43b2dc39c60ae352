"""JSON API for units and dispatches: list, recommend, confirm, manual assignment, override/cancel, intercept.

Every request acts through the one door (``services().operations``, central.operations): without routing
running on this central the endpoints answer 503. Reading needs ``map.view`` or ``events.view``; anything that
sends or stops a patrol needs ``dispatch``. The acting user is recorded in the audit log.
"""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, jsonify, request
from pydantic import ConfigDict, Field, model_validator

from kuzet.central.operations import NotRunning, Operations
from kuzet.central.routing.service import RoutingError, RoutingService
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.params import Body, Int, Required, Text, UlidConverter, body, required_text
from kuzet.central.web.services import services

blueprint = Blueprint("routing", __name__)
# Before the routes below: the app must know <ulid:...> when they are added.
blueprint.record_once(lambda state: state.app.url_map.converters.setdefault("ulid", UlidConverter))


def _service() -> RoutingService:
    """Routing, for what is read (units, dispatches, recommendations)."""
    return _door().dispatching()


def _door() -> Operations:
    """The one door, for what changes something; NotRunning (503) first where routing does not run."""
    door = services().operations
    door.dispatching()
    return door


@blueprint.errorhandler(NotRunning)
def _not_running(error: NotRunning):
    response = jsonify(error=str(error))
    response.status_code = 503
    return response


def _actor() -> str:
    return current_user().username


class UnitEdit(Body):
    callsign: Text(40) | None = None
    capabilities: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=40)]], Field(max_length=50)] | None
    ) = None


class AssignUnit(Body):
    event_id: Required(26)
    unit: Required(63)
    note: Text(2000) = ""


class SendNearest(Body):
    event_id: Required(26)


class Divert(Body):
    event_id: Required(26)
    reason: Text(200) = ""


class Cancel(Body):
    reason: Required(200)


class Reassign(Body):
    unit: Required(63)
    reason: Text(200) = ""


class Intercept(Body):
    """Around an event, or around a place: an event_id or both lat and lon."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["event_id"], "properties": {"event_id": {"pattern": r"\S"}}},
                {
                    "required": ["lat", "lon"],
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                },
            ]
        }
    )
    event_id: Text(26) = ""
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    direction_deg: Annotated[float, Field(ge=0, lt=360)] | None = None
    radius_m: Annotated[float, Field(ge=1, le=50_000)] | None = None
    description: Text(2000) = ""

    @model_validator(mode="after")
    def _a_place(self):
        if not self.event_id.strip() and (self.lat is None or self.lon is None):
            raise ValueError("intercept needs an event_id or a lat/lon")
        return self


LIMIT = Int("limit", 200, 1, 1000, "at most this many rows (default 200, max 1000)")


@blueprint.errorhandler(RoutingError)
def _routing_error(error: RoutingError):
    response = jsonify(error=str(error))
    response.status_code = error.status
    return response


@blueprint.get("/api/v1/units")
@require("map.view")
def list_units():
    return jsonify(units=[u.as_dict() for u in _service().units.all()])


@blueprint.get("/api/v1/unit-board")
@require("events.view")
def unit_board():
    """The unit board's rows; with ``event_id``, each unit's distance to that event and the nearest free one."""
    event_id = (request.args.get("event_id") or "").strip() or None
    return jsonify(_service().unit_board(event_id))


@blueprint.patch("/api/v1/units/<device>")
@require("dispatch")
def edit_unit(device: str):
    edit = body(UnitEdit)
    callsign = edit.callsign.strip() if edit.callsign is not None else None
    return jsonify(_door().edit_unit(device, _actor(), callsign, edit.capabilities))


@blueprint.post("/api/v1/units/<device>/divert")
@require("dispatch")
def divert(device: str):
    """Send a busy unit to a more urgent event; the event it leaves waits for the next free unit."""
    sent = body(Divert)
    dispatch = _door().divert_unit(device, sent.event_id.strip(), _actor(), sent.reason.strip())
    return jsonify(dispatch), 201


@blueprint.get("/api/v1/dispatches")
@require("events.view")
def list_dispatches():
    limit = LIMIT.read()
    service = _service()
    found = service.dispatches(
        request.args.get("state"),
        request.args.get("event_id"),
        limit,
        with_log=request.args.get("log") == "1",
    )
    return jsonify(dispatches=i18n.with_notes(found), waiting=service.waiting())


@blueprint.get("/api/v1/dispatches/<ulid:dispatch_id>")
@require("events.view")
def get_dispatch(dispatch_id: str):
    return jsonify(i18n.with_notes([_service().dispatch(dispatch_id)])[0])


@blueprint.get("/api/v1/dispatches/recommend")
@require("dispatch")
def recommend():
    event_id = required_text("event_id")
    return jsonify(event_id=event_id, units=_service().recommend(event_id))


@blueprint.post("/api/v1/dispatches")
@require("dispatch")
def assign():
    sent = body(AssignUnit)
    dispatch = _door().assign_unit(sent.event_id, sent.unit, _actor(), note=sent.note.strip())
    return jsonify(dispatch), 201


@blueprint.post("/api/v1/dispatches/nearest")
@require("dispatch")
def send_nearest():
    dispatch = _door().send_nearest(body(SendNearest).event_id, _actor())
    return jsonify(dispatch), 201


@blueprint.post("/api/v1/dispatches/<ulid:dispatch_id>/confirm")
@require("dispatch")
def confirm(dispatch_id: str):
    return jsonify(_door().confirm_dispatch(dispatch_id, _actor()))


@blueprint.post("/api/v1/dispatches/<ulid:dispatch_id>/cancel")
@require("dispatch")
def cancel(dispatch_id: str):
    return jsonify(_door().cancel_dispatch(dispatch_id, _actor(), body(Cancel).reason))


@blueprint.post("/api/v1/dispatches/<ulid:dispatch_id>/reassign")
@require("dispatch")
def reassign(dispatch_id: str):
    sent = body(Reassign)
    return jsonify(_door().reassign_dispatch(dispatch_id, sent.unit, _actor(), sent.reason.strip())), 201


@blueprint.post("/api/v1/dispatches/intercept/preview")
@require("dispatch")
def intercept_preview():
    """How many units (and which) the same intercept would send now: the page asks to confirm that number."""
    sent = body(Intercept)
    preview = _service().intercept_preview(
        event_id=sent.event_id.strip() or None, lat=sent.lat, lon=sent.lon, radius_m=sent.radius_m
    )
    return jsonify(preview)


@blueprint.post("/api/v1/dispatches/intercept")
@require("dispatch")
def intercept():
    sent = body(Intercept)
    dispatches = _door().intercept(
        _actor(),
        event_id=sent.event_id.strip() or None,
        lat=sent.lat,
        lon=sent.lon,
        direction_deg=sent.direction_deg,
        radius_m=sent.radius_m,
        description=sent.description.strip(),
    )
    return jsonify(dispatches=dispatches), 201
