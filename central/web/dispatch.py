"""JSON API for units and dispatches: list, recommend, confirm, manual assignment, override/cancel, intercept.

Every request acts through the one door (``services().operations``, central.operations): without routing
running on this central the endpoints answer 503. Reading needs ``map.view`` or ``events.view``; anything that
sends or stops a patrol needs ``dispatch``. The acting user is recorded in the audit log.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from kuzet.central.operations import NotRunning, Operations
from kuzet.central.routing.service import RoutingError, RoutingService
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.services import services

blueprint = Blueprint("routing", __name__)


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


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise RoutingError("send a JSON object", 400)
    return body


def _text(body: dict, key: str, required: bool = False, limit: int = 2000) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise RoutingError(f"'{key}' must be text of at most {limit} characters", 400)
    if required and not value.strip():
        raise RoutingError(f"'{key}' is required", 400)
    return value.strip()


def _number(body: dict, key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RoutingError(f"'{key}' must be a number from {low} to {high}", 400)
    return float(value)


@blueprint.errorhandler(RoutingError)
def _routing_error(error: RoutingError):
    response = jsonify(error=str(error))
    response.status_code = error.status
    return response


@blueprint.get("/api/v1/units")
@require("map.view")
def list_units():
    return jsonify(units=[u.as_dict() for u in _service().units.all()])


@blueprint.patch("/api/v1/units/<device>")
@require("dispatch")
def edit_unit(device: str):
    body = _body()
    capabilities = body.get("capabilities")
    if capabilities is not None and (
        not isinstance(capabilities, list)
        or not all(isinstance(c, str) and 0 < len(c) <= 40 for c in capabilities)
    ):
        raise RoutingError("'capabilities' must be a list of short names", 400)
    callsign = _text(body, "callsign", limit=40) if "callsign" in body else None
    return jsonify(_door().edit_unit(device, _actor(), callsign, capabilities))


@blueprint.get("/api/v1/dispatches")
@require("events.view")
def list_dispatches():
    limit = min(max(request.args.get("limit", 200, type=int), 1), 1000)
    service = _service()
    return jsonify(
        dispatches=service.dispatches(
            request.args.get("state"),
            request.args.get("event_id"),
            limit,
            with_log=request.args.get("log") == "1",
        ),
        waiting=service.waiting(),
    )


@blueprint.get("/api/v1/dispatches/<dispatch_id>")
@require("events.view")
def get_dispatch(dispatch_id: str):
    return jsonify(_service().dispatch(dispatch_id))


@blueprint.get("/api/v1/dispatches/recommend")
@require("dispatch")
def recommend():
    event_id = request.args.get("event_id", "")
    if not event_id:
        raise RoutingError("give ?event_id=", 400)
    return jsonify(event_id=event_id, units=_service().recommend(event_id))


@blueprint.post("/api/v1/dispatches")
@require("dispatch")
def assign():
    body = _body()
    dispatch = _door().assign_unit(
        _text(body, "event_id", required=True, limit=26),
        _text(body, "unit", required=True, limit=63),
        _actor(),
        note=_text(body, "note"),
    )
    return jsonify(dispatch), 201


@blueprint.post("/api/v1/dispatches/<dispatch_id>/confirm")
@require("dispatch")
def confirm(dispatch_id: str):
    return jsonify(_door().confirm_dispatch(dispatch_id, _actor()))


@blueprint.post("/api/v1/dispatches/<dispatch_id>/cancel")
@require("dispatch")
def cancel(dispatch_id: str):
    return jsonify(
        _door().cancel_dispatch(dispatch_id, _actor(), _text(_body(), "reason", required=True, limit=200))
    )


@blueprint.post("/api/v1/dispatches/<dispatch_id>/reassign")
@require("dispatch")
def reassign(dispatch_id: str):
    body = _body()
    return jsonify(
        _door().reassign_dispatch(
            dispatch_id,
            _text(body, "unit", required=True, limit=63),
            _actor(),
            _text(body, "reason", limit=200),
        )
    ), 201


@blueprint.post("/api/v1/dispatches/intercept")
@require("dispatch")
def intercept():
    body = _body()
    event_id = _text(body, "event_id", limit=26) or None
    dispatches = _door().intercept(
        _actor(),
        event_id=event_id,
        lat=_number(body, "lat", -90, 90),
        lon=_number(body, "lon", -180, 180),
        direction_deg=_number(body, "direction_deg", 0, 359.999),
        radius_m=_number(body, "radius_m", 1, 50_000),
        description=_text(body, "description"),
    )
    return jsonify(dispatches=dispatches), 201
