"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json. Kept next to api.py: a test checks
that every /api/v1 route is described here and every path described here exists."""

from __future__ import annotations

from kuzet.central.commands import PERMISSION as COMMAND_PERMISSION
from kuzet.central.store.queries import EVENT_FILTERS
from kuzet.central.store.registry import Registration
from kuzet.central.web import alerts, api, device_detail, dispatch, incidents
from kuzet.central.web.params import ULID_PATTERN, Choice, Int, body_schema

_OBJ = {"type": "object"}
_TEXT = {"type": "string"}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": _TEXT}}
# Why each error status is answered; each operation lists those that can happen to it.
WHY = {
    "400": "a parameter or the body is not what this operation takes (the reason is in `error`)",
    "401": "not logged in, or the token is unknown, revoked or its account disabled",
    "403": "the account's role lacks the permission",
    "404": "no such resource",
    "409": "the resource's state does not allow it (the reason is in `error`)",
    "413": "the body is larger than 1 MiB",
    "503": "the part of central it needs is not running (the reason is in `error`)",
}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _list(key: str, **more) -> dict:
    """An object holding a list of rows under ``key`` (and ``more`` beside it)."""
    return {
        "type": "object",
        "required": [key, *more],
        "properties": {key: {"type": "array", "items": _OBJ}, **more},
    }


def _param(param) -> dict:
    if isinstance(param, dict):  # written out in full
        return param
    if isinstance(param, Int | Choice):
        required = isinstance(param, Choice) and param.default is None
        return {
            "name": param.name,
            "in": "query",
            "required": required,
            "schema": param.schema(),
            "description": param.text,
        }
    name, where, kind, text = param
    schema = kind if isinstance(kind, dict) else {"type": kind}
    return {"name": name, "in": where, "required": where == "path", "schema": schema, "description": text}


def _op(
    summary: str,
    permission: str | None,
    params=(),
    body: dict | None = None,
    responses=None,
    *,
    ok: dict | None = None,
    errors=(),
    optional_body: bool = False,
) -> dict:
    """One operation. ``permission``: "public" (no log-in), None (any logged-in account) or the permission
    needed; ``ok``: the JSON schema of a 200 answer (``responses`` for other successes); ``errors``: the error
    statuses particular to it (400 with parameters or a body, 401, 403, 404 with a path parameter, 413 with a
    body are added here)."""
    operation = {
        "summary": summary,
        "parameters": [_param(p) for p in params],
        "responses": responses or {"200": {"description": "OK", "content": _json(ok or _OBJ)}},
    }
    statuses = set(errors)
    if params or body:
        statuses.add("400")
    if permission != "public":
        statuses.add("401")
    if permission not in (None, "public"):
        operation["description"] = f"Needs the permission `{permission}`."
        statuses.add("403")
    if any(p["in"] == "path" for p in operation["parameters"]):
        statuses.add("404")
    if body:
        statuses.add("413")
        operation["requestBody"] = {"required": not optional_body, "content": _json(body)}
    for status in sorted(statuses):
        operation["responses"][status] = {"description": WHY[status], "content": _json(ERROR)}
    return operation


def _created(what: str, schema: dict = _OBJ, status: str = "201") -> dict:
    return {status: {"description": what, "content": _json(schema)}}


_EVENT_ID = ("event_id", "path", "string", "the event's ULID")
_DEVICE_ID = ("device_id", "path", "string", "the device's name")
_LIMIT = api.LIMIT
_DISPATCH_ID = (
    "dispatch_id",
    "path",
    {"type": "string", "pattern": f"^{ULID_PATTERN}$"},
    "the dispatch's ULID",
)
_EVENT = {"type": "object", "required": ["event"], "properties": {"event": _OBJ}}
_SSE = {"200": {"description": "server-sent events", "content": {"text/event-stream": {"schema": _TEXT}}}}
_BULK = {
    "type": "object",
    "required": ["done", "skipped"],
    "properties": {"done": {"type": "array"}, "skipped": {"type": "array"}},
}
_ROUTING = ("503",)  # routing is not running on this central


def routing_paths() -> dict:
    """The dispatch endpoints (kuzet.central.web.dispatch), described here so that /api/v1 has one document."""
    dispatch_body = {"type": "object", "required": ["dispatch_id"], "properties": {"dispatch_id": _TEXT}}
    return {
        "/api/v1/units": {
            "get": _op(
                "Patrol units with position, duty and current dispatch",
                "map.view",
                ok=_list("units"),
                errors=_ROUTING,
            )
        },
        "/api/v1/unit-board": {
            "get": _op(
                "The unit board: each unit's status, since when, its incident and distance to the selected event",
                "events.view",
                [
                    (
                        "event_id",
                        "query",
                        "string",
                        "the selected event: distances to it and the nearest free unit",
                    )
                ],
                ok={
                    "type": "object",
                    "required": ["units", "nearest", "waiting"],
                    "properties": {
                        "event_id": {"type": ["string", "null"]},
                        "units": {"type": "array", "items": _OBJ},
                        "nearest": {"type": ["string", "null"]},
                        "waiting": {"type": "array", "items": _TEXT},
                    },
                },
                errors=("404", "409", *_ROUTING),  # unknown event; a closed one
            )
        },
        "/api/v1/units/{device}": {
            "patch": _op(
                "Change a unit's callsign or capabilities",
                "dispatch",
                [("device", "path", "string", "the badge's device name")],
                body_schema(dispatch.UnitEdit),
                errors=_ROUTING,
            )
        },
        "/api/v1/units/{device}/divert": {
            "post": _op(
                "Divert a busy unit to a more urgent event; the event it leaves waits for the next free unit",
                "dispatch",
                [("device", "path", "string", "the badge's device name")],
                body_schema(dispatch.Divert),
                responses=_created("the new dispatch", dispatch_body),
                errors=("409", *_ROUTING),  # not busy, not more urgent, offline, revoked
            )
        },
        "/api/v1/dispatches": {
            "get": _op(
                "Dispatches (and events waiting for a free unit)",
                "events.view",
                [
                    ("state", "query", "string", "only dispatches in this state"),
                    ("event_id", "query", "string", "only this event's dispatches"),
                    ("log", "query", "string", "1: each dispatch with its state changes"),
                    dispatch.LIMIT,
                ],
                ok=_list("dispatches", waiting={"type": "array", "items": _TEXT}),
                errors=_ROUTING,
            ),
            "post": _op(
                "Send this unit to the event (manual assignment)",
                "dispatch",
                body=body_schema(dispatch.AssignUnit),
                responses=_created("sent", dispatch_body),
                errors=("404", "409", *_ROUTING),  # unknown event or unit; unit not free
            ),
        },
        "/api/v1/dispatches/recommend": {
            "get": _op(
                "The nearest free units for an event",
                "dispatch",
                [
                    {
                        "name": "event_id",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": r"\S"},
                        "description": "the event",
                    }
                ],
                ok={
                    "type": "object",
                    "required": ["event_id", "units"],
                    "properties": {"event_id": _TEXT, "units": {"type": "array", "items": _OBJ}},
                },
                errors=("404", "409", *_ROUTING),  # unknown event; a closed one
            )
        },
        "/api/v1/dispatches/{dispatch_id}": {
            "get": _op(
                "One dispatch with its log", "events.view", [_DISPATCH_ID], ok=dispatch_body, errors=_ROUTING
            )
        },
        "/api/v1/dispatches/{dispatch_id}/confirm": {
            "post": _op(
                "Confirm a proposed dispatch",
                "dispatch",
                [_DISPATCH_ID],
                ok=dispatch_body,
                errors=("409", *_ROUTING),
            )
        },
        "/api/v1/dispatches/{dispatch_id}/cancel": {
            "post": _op(
                "Cancel a dispatch",
                "dispatch",
                [_DISPATCH_ID],
                body_schema(dispatch.Cancel),
                ok=dispatch_body,
                errors=("409", *_ROUTING),
            )
        },
        "/api/v1/dispatches/{dispatch_id}/reassign": {
            "post": _op(
                "Give the dispatch to another unit",
                "dispatch",
                [_DISPATCH_ID],
                body_schema(dispatch.Reassign),
                responses=_created("the new dispatch", dispatch_body),
                errors=("409", *_ROUTING),
            )
        },
        "/api/v1/dispatches/nearest": {
            "post": _op(
                "Send the nearest free unit to an event now",
                "dispatch",
                body=body_schema(dispatch.SendNearest),
                responses=_created("the new dispatch", dispatch_body),
                errors=("404", "409", *_ROUTING),  # unknown event; closed, or no free unit
            )
        },
        "/api/v1/dispatches/intercept/preview": {
            "post": _op(
                "How many units (and which) an intercept would send now; changes nothing",
                "dispatch",
                body=body_schema(dispatch.Intercept),
                ok={
                    "type": "object",
                    "required": ["count", "radius_m", "units"],
                    "properties": {
                        "count": {"type": "integer"},
                        "radius_m": {"type": "number"},
                        "units": {"type": "array", "items": _OBJ},
                    },
                },
                errors=("404", "409", *_ROUTING),  # unknown event; a closed one
            )
        },
        "/api/v1/dispatches/intercept": {
            "post": _op(
                "Send the units around a place (or an event) to intercept",
                "dispatch",
                body=body_schema(dispatch.Intercept),
                responses=_created("the dispatches sent", _list("dispatches")),
                errors=("404", "409", *_ROUTING),  # unknown event; no free unit within the radius
            )
        },
    }


def _watchlist_paths() -> dict:
    from kuzet.central.watchlist.openapi_paths import watchlist_paths  # it builds on the helpers above

    return watchlist_paths()


def document() -> dict:
    event_filters = [
        (name, "query", "string", f"only events whose {column} is this")
        for name, column in EVENT_FILTERS.items()
    ]
    command_body = body_schema(device_detail.CommandBody)
    command_body["properties"]["name"] = {"enum": list(COMMAND_PERMISSION)}
    registration = body_schema(Registration)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kuzet central API",
            "version": "1",
            "description": "Events, devices, units, statistics and the audit log of a Kuzet operations centre. "
            "Authenticate with the page's session cookie (send X-CSRFToken on changes) or with "
            "`Authorization: Bearer <token>` from `kuzet central create-token`. Every error is answered "
            'as `{"error": "the reason"}` with its status.',
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "kuzet_session"},
            }
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {**_op("This document", "public"), "security": []}},
            "/api/v1/me": {"get": _op("The account the request acts as, with its permissions", None)},
            "/api/v1/events": {
                "get": _op(
                    "Events, newest first; status=open means not closed",
                    "events.view",
                    [*event_filters, _LIMIT, ("before", "query", "string", "received_at to page back from")],
                    ok=_list("events"),
                )
            },
            "/api/v1/events/counters": {"get": _op("Open events by status and severity", "events.view")},
            "/api/v1/events/{event_id}": {
                "get": _op(
                    "One event with its timeline, media links and dispatches (audited as a view)",
                    "events.view",
                    [_EVENT_ID],
                    ok={"type": "object", "required": ["event", "timeline", "media", "dispatches"]},
                )
            },
            "/api/v1/events/{event_id}/ack": {
                "post": _op("Acknowledge a new event", "events.act", [_EVENT_ID], ok=_EVENT, errors=("409",))
            },
            "/api/v1/events/{event_id}/assign": {
                "post": _op(
                    "Assign the event to an account (409: no such active account, or the event is closed)",
                    "events.act",
                    [_EVENT_ID],
                    body_schema(api.AssignBody),
                    ok=_EVENT,
                    errors=("409",),
                )
            },
            "/api/v1/events/{event_id}/close": {
                "post": _op(
                    "Close the event with a note; patrols still on their way are stood down with it",
                    "events.act",
                    [_EVENT_ID],
                    body_schema(api.CloseBody),
                    ok=_EVENT,
                    errors=("409",),
                )
            },
            "/api/v1/events/{event_id}/hold": {
                "post": _op(
                    "Hold (or release) the event's evidence past retention",
                    "events.hold",
                    [_EVENT_ID],
                    body_schema(api.HoldBody),
                    ok=_EVENT,
                    errors=("409",),
                )
            },
            "/api/v1/devices": {
                "get": _op(
                    "Devices with online state, last seen, parsed status and problems",
                    "devices.view",
                    ok=_list("devices"),
                ),
                "post": _op(
                    "Register (201) or re-register (200) a device",
                    "devices.manage",
                    body=registration,
                    responses={**_created("registered"), **_created("re-registered", status="200")},
                    errors=("409",),  # the device is revoked: reinstate it first
                ),
            },
            "/api/v1/devices/{device_id}": {"get": _op("One device", "devices.view", [_DEVICE_ID])},
            "/api/v1/devices/{device_id}/revoke": {
                "post": _op(
                    "Revoke a device; a badge on a dispatch is stood down and its event re-routed",
                    "devices.manage",
                    [_DEVICE_ID],
                    body_schema(api.RevokeBody),
                    optional_body=True,
                )
            },
            "/api/v1/devices/{device_id}/reinstate": {
                "post": _op(
                    "Lift a device's revocation (audited with the reason); then it may be re-registered",
                    "devices.manage",
                    [_DEVICE_ID],
                    body_schema(api.ReinstateBody),
                    errors=("409",),  # not revoked
                )
            },
            "/api/v1/devices/{device_id}/commands": {
                "get": _op(
                    "Commands sent to the device, newest first, with its results",
                    "devices.view",
                    [_DEVICE_ID, device_detail.COMMANDS_LIMIT],
                    ok=_list("commands"),
                ),
                "post": {
                    **_op(
                        "Send a command to the device (published on its down/command topic; audited)",
                        None,
                        [_DEVICE_ID],
                        command_body,
                        responses=_created(
                            "sent; the result arrives later (GET, or the command channel)", status="202"
                        ),
                        # 403: the role may not send this command; 409: a revoked device, or a command only
                        # routing sends; 503: central has no MQTT connection
                        errors=("403", "409", "503"),
                    ),
                    "description": "Needs, per command: "
                    + ", ".join(
                        f"`{name}`: `{permission}`" for name, permission in COMMAND_PERMISSION.items()
                    ),
                },
            },
            "/api/v1/devices/{device_id}/evidence": {
                "get": _op(
                    "Verify a badge's whole evidence chain and every recording central holds (audited): status "
                    "verified, broken (broken_at), gap (gap_at), incomplete or empty, with each problem",
                    "devices.view",
                    [_DEVICE_ID],
                    ok={"type": "object", "required": ["status", "summary"]},
                )
            },
            "/api/v1/devices/{device_id}/live": {
                "get": _op(
                    "The device's live frames as server-sent events (channel live); start and stop the stream "
                    "with the live_start/live_stop commands. Who watched is audited",
                    "events.media",
                    [_DEVICE_ID],
                    responses=dict(_SSE),
                )
            },
            "/api/v1/incidents": {
                "get": _op(
                    "Incidents (events of one camera, zone and type within [triage] window_s), most severe and "
                    "longest waiting first; a time range searches closed ones too",
                    "events.view",
                    [
                        *(
                            (name, "query", "string", f"only incidents whose {name} is this")
                            for name in ("status", "severity", "type", "device", "zone")
                        ),
                        (
                            "since",
                            "query",
                            {"type": "string", "format": "date-time"},
                            "started at or after (ISO-8601; no offset: the site's zone)",
                        ),
                        ("until", "query", {"type": "string", "format": "date-time"}, "started at or before"),
                    ],
                    ok=_list("incidents", total={"type": "integer"}, window_s={"type": "number"}),
                )
            },
            "/api/v1/incidents/ack": {
                "post": _op(
                    "Acknowledge these events (each on its own; those that cannot be are listed under skipped)",
                    "events.act",
                    body=body_schema(incidents.BulkBody),
                    ok=_BULK,
                )
            },
            "/api/v1/incidents/close": {
                "post": _op(
                    "Close these events with one note (each on its own, patrols stood down with it)",
                    "events.act",
                    body=body_schema(incidents.BulkCloseBody),
                    ok=_BULK,
                )
            },
            "/api/v1/alerts": {
                "get": _op(
                    "Alerts, newest first, with the count of those not acknowledged (open)",
                    "events.view",
                    [alerts.STATE, alerts.LIMIT],
                    ok=_list("alerts", open={"type": "integer"}),
                )
            },
            "/api/v1/alerts/{alert_id}/ack": {
                "post": _op(
                    "Acknowledge an alert (audited)",
                    "events.act",
                    [("alert_id", "path", "string", "the alert's number")],
                )
            },
            "/api/v1/map": {
                "get": _op(
                    "Devices, units, open events and dispatches under way, with positions",
                    "map.view",
                    ok={"type": "object", "required": ["devices", "units", "events", "dispatches"]},
                )
            },
            "/api/v1/stream": {
                "get": _op(
                    "Live updates as server-sent events (channels event, device, unit, dispatch, dead_letter, "
                    "alert, command), each only to the roles that may see it; re-checks the session or token "
                    "every few seconds and ends (event end) when it is logged out, revoked or disabled",
                    None,
                    responses=dict(_SSE),
                )
            },
            "/api/v1/stats": {
                "get": _op(
                    "Event counts per hour or day by group",
                    "stats.view",
                    [api.PERIOD, api.GROUP_BY],
                    ok={"type": "object", "required": ["period", "by", "buckets", "groups", "counts"]},
                )
            },
            "/api/v1/stats.csv": {
                "get": _op(
                    "The same as CSV (bucket, group, events)",
                    "stats.view",
                    [api.PERIOD, api.GROUP_BY],
                    responses={"200": {"description": "CSV", "content": {"text/csv": {"schema": _TEXT}}}},
                )
            },
            "/api/v1/audit": {
                "get": _op(
                    "Audit entries, newest first",
                    "audit.read",
                    [
                        ("actor", "query", "string", ""),
                        ("target", "query", "string", "e.g. event:<id>"),
                        ("action", "query", "string", ""),
                        api.BEFORE_SEQ,
                        _LIMIT,
                    ],
                    ok=_list("entries"),
                )
            },
            "/api/v1/audit/verify": {
                "get": _op(
                    "Check the audit hash chain",
                    "audit.read",
                    ok={"type": "object", "required": ["ok", "first_bad_seq"]},
                )
            },
            "/api/v1/dead-letters": {
                "get": _op(
                    "Messages that broke the contract",
                    "dead_letters.view",
                    [_LIMIT],
                    ok=_list("dead_letters"),
                )
            },
            "/api/v1/users": {"get": _op("Accounts", "users.read", ok=_list("users"))},
            **routing_paths(),
            **_watchlist_paths(),
        },
    }
