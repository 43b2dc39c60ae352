"""JSON API for units and dispatches: list, recommend, confirm, manual assignment, override/cancel, intercept.

The running ``RoutingService`` is found in ``app.extensions["kuzet.routing_service"]`` (set it with
``attach(app, service)`` where central starts its parts). Reading needs ``map.view`` or ``events.view``;
anything that sends or stops a patrol needs ``dispatch``. The acting user is recorded in the audit log.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request

from kuzet.central.routing.service import RoutingError, RoutingService
from kuzet.central.web.auth import current_user, require

blueprint = Blueprint("routing", __name__)


def attach(app: Flask, service: RoutingService) -> None:
    app.extensions["kuzet.routing_service"] = service


def _service() -> RoutingService:
    service = current_app.extensions.get("kuzet.routing_service")
    if service is None:
        raise RoutingError("routing is not running on this central", 503)
    return service


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
    return jsonify(_service().edit_unit(device, _actor(), callsign, capabilities))


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
    dispatch = _service().assign(
        _text(body, "event_id", required=True, limit=26),
        _text(body, "unit", required=True, limit=63),
        _actor(),
        note=_text(body, "note"),
    )
    return jsonify(dispatch), 201


@blueprint.post("/api/v1/dispatches/<dispatch_id>/confirm")
@require("dispatch")
def confirm(dispatch_id: str):
    return jsonify(_service().confirm(dispatch_id, _actor()))


@blueprint.post("/api/v1/dispatches/<dispatch_id>/cancel")
@require("dispatch")
def cancel(dispatch_id: str):
    return jsonify(
        _service().cancel(dispatch_id, _actor(), _text(_body(), "reason", required=True, limit=200))
    )


@blueprint.post("/api/v1/dispatches/<dispatch_id>/reassign")
@require("dispatch")
def reassign(dispatch_id: str):
    body = _body()
    return jsonify(
        _service().reassign(
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
    dispatches = _service().intercept(
        _actor(),
        event_id=event_id,
        lat=_number(body, "lat", -90, 90),
        lon=_number(body, "lon", -180, 180),
        direction_deg=_number(body, "direction_deg", 0, 359.999),
        radius_m=_number(body, "radius_m", 1, 50_000),
        description=_text(body, "description"),
    )
    return jsonify(dispatches=dispatches), 201
