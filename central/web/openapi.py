"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json. Kept next to api.py: a test checks
that every /api/v1 route is described here and every path described here exists."""

from __future__ import annotations

from kuzet.central.commands import PERMISSION as COMMAND_PERMISSION
from kuzet.central.store.queries import EVENT_FILTERS, STAT_GROUPS, STAT_PERIODS

_OBJ = {"type": "object"}


def _op(summary: str, permission: str | None, params=(), body: dict | None = None, responses=None) -> dict:
    operation = {
        "summary": summary,
        "parameters": [
            {
                "name": name,
                "in": where,
                "required": where == "path",
                "schema": {"type": kind},
                "description": text,
            }
            for name, where, kind, text in params
        ],
        "responses": responses
        or {"200": {"description": "OK", "content": {"application/json": {"schema": _OBJ}}}},
    }
    # "public": no log-in; None: any logged-in account; otherwise the permission needed.
    if permission != "public":
        operation["responses"]["401"] = {"description": "not logged in / bad token"}
    if permission not in (None, "public"):
        operation["description"] = f"Needs the permission `{permission}`."
        operation["responses"]["403"] = {"description": "role lacks the permission"}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


_EVENT_ID = ("event_id", "path", "string", "the event's ULID")
_DEVICE_ID = ("device_id", "path", "string", "the device's name")
_LIMIT = ("limit", "query", "integer", "at most this many rows (default 200, max 1000)")


_DISPATCH_ID = ("dispatch_id", "path", "string", "the dispatch's ULID")
_TEXT = {"type": "string"}


def routing_paths() -> dict:
    """The dispatch endpoints (kuzet.central.web.dispatch), described here so that /api/v1 has one document."""
    return {
        "/api/v1/units": {"get": _op("Patrol units with position, duty and current dispatch", "map.view")},
        "/api/v1/units/{device}": {
            "patch": _op(
                "Change a unit's callsign or capabilities",
                "dispatch",
                [("device", "path", "string", "the badge's device name")],
                {
                    "type": "object",
                    "properties": {"callsign": _TEXT, "capabilities": {"type": "array", "items": _TEXT}},
                },
            )
        },
        "/api/v1/dispatches": {
            "get": _op(
                "Dispatches (and events waiting for a free unit)",
                "events.view",
                [
                    ("state", "query", "string", ""),
                    ("event_id", "query", "string", ""),
                    ("log", "query", "string", "1: each dispatch with its state changes"),
                    _LIMIT,
                ],
            ),
            "post": _op(
                "Send this unit to the event (manual assignment)",
                "dispatch",
                body={
                    "type": "object",
                    "required": ["event_id", "unit"],
                    "properties": {"event_id": _TEXT, "unit": _TEXT, "note": _TEXT},
                },
                responses={
                    "201": {"description": "sent"},
                    "404": {"description": "unknown event or unit"},
                    "409": {"description": "unit not free"},
                },
            ),
        },
        "/api/v1/dispatches/recommend": {
            "get": _op(
                "The nearest free units for an event", "dispatch", [("event_id", "query", "string", "")]
            )
        },
        "/api/v1/dispatches/{dispatch_id}": {
            "get": _op("One dispatch with its log", "events.view", [_DISPATCH_ID])
        },
        "/api/v1/dispatches/{dispatch_id}/confirm": {
            "post": _op("Confirm a proposed dispatch", "dispatch", [_DISPATCH_ID])
        },
        "/api/v1/dispatches/{dispatch_id}/cancel": {
            "post": _op(
                "Cancel a dispatch",
                "dispatch",
                [_DISPATCH_ID],
                {"type": "object", "required": ["reason"], "properties": {"reason": _TEXT}},
            )
        },
        "/api/v1/dispatches/{dispatch_id}/reassign": {
            "post": _op(
                "Give the dispatch to another unit",
                "dispatch",
                [_DISPATCH_ID],
                {"type": "object", "required": ["unit"], "properties": {"unit": _TEXT, "reason": _TEXT}},
                responses={"201": {"description": "the new dispatch"}},
            )
        },
        "/api/v1/dispatches/intercept": {
            "post": _op(
                "Send the units around a place (or an event) to intercept",
                "dispatch",
                body={
                    "type": "object",
                    "properties": {
                        "event_id": _TEXT,
                        "lat": {"type": "number"},
                        "lon": {"type": "number"},
                        "direction_deg": {"type": "number"},
                        "radius_m": {"type": "number"},
                        "description": _TEXT,
                    },
                },
                responses={"201": {"description": "the dispatches sent"}},
            )
        },
    }


def document() -> dict:
    event_filters = [
        (name, "query", "string", f"only events whose {column} is this")
        for name, column in EVENT_FILTERS.items()
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kuzet central API",
            "version": "1",
            "description": "Events, devices, units, statistics and the audit log of a Kuzet operations centre. "
            "Authenticate with the page's session cookie (send X-CSRFToken on changes) or with "
            "`Authorization: Bearer <token>` from `kuzet central create-token`.",
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
                )
            },
            "/api/v1/events/counters": {"get": _op("Open events by status and severity", "events.view")},
            "/api/v1/events/{event_id}": {
                "get": _op(
                    "One event with its timeline, media links and dispatches (audited as a view)",
                    "events.view",
                    [_EVENT_ID],
                )
            },
            "/api/v1/events/{event_id}/ack": {
                "post": _op("Acknowledge a new event", "events.act", [_EVENT_ID])
            },
            "/api/v1/events/{event_id}/assign": {
                "post": _op(
                    "Assign the event to an account",
                    "events.act",
                    [_EVENT_ID],
                    {
                        "type": "object",
                        "required": ["assignee"],
                        "properties": {"assignee": {"type": "string"}},
                    },
                )
            },
            "/api/v1/events/{event_id}/close": {
                "post": _op(
                    "Close the event with a note; patrols still on their way are stood down with it",
                    "events.act",
                    [_EVENT_ID],
                    {
                        "type": "object",
                        "required": ["note"],
                        "properties": {"note": {"type": "string", "maxLength": 2000}},
                    },
                )
            },
            "/api/v1/events/{event_id}/hold": {
                "post": _op(
                    "Hold (or release) the event's evidence past retention",
                    "events.hold",
                    [_EVENT_ID],
                    {"type": "object", "properties": {"hold": {"type": "boolean"}}},
                )
            },
            "/api/v1/devices": {
                "get": _op(
                    "Devices with online state, last seen, parsed status and problems", "devices.view"
                ),
                "post": _op(
                    "Register (201) or re-register (200) a device",
                    "devices.manage",
                    body={
                        "type": "object",
                        "required": ["device_id", "kind", "site"],
                        "additionalProperties": False,
                        "properties": {
                            "device_id": {"type": "string"},
                            "kind": {"enum": ["camera", "badge"]},
                            "name": {"type": "string"},
                            "site": {"type": "string"},
                            "lat": {"type": "number"},
                            "lon": {"type": "number"},
                        },
                    },
                    responses={
                        "201": {"description": "registered"},
                        "200": {"description": "re-registered"},
                        "400": {"description": "invalid body"},
                        "409": {"description": "the device is revoked: reinstate it first"},
                    },
                ),
            },
            "/api/v1/devices/{device_id}": {"get": _op("One device", "devices.view", [_DEVICE_ID])},
            "/api/v1/devices/{device_id}/revoke": {
                "post": _op(
                    "Revoke a device; a badge on a dispatch is stood down and its event re-routed",
                    "devices.manage",
                    [_DEVICE_ID],
                    {"type": "object", "properties": {"reason": {"type": "string"}}},
                )
            },
            "/api/v1/devices/{device_id}/reinstate": {
                "post": _op(
                    "Lift a device's revocation (audited with the reason); then it may be re-registered",
                    "devices.manage",
                    [_DEVICE_ID],
                    {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}},
                )
            },
            "/api/v1/devices/{device_id}/commands": {
                "get": _op(
                    "Commands sent to the device, newest first, with its results",
                    "devices.view",
                    [_DEVICE_ID, _LIMIT],
                ),
                "post": {
                    **_op(
                        "Send a command to the device (published on its down/command topic; audited)",
                        None,
                        [_DEVICE_ID],
                        {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"enum": list(COMMAND_PERMISSION)},
                                "args": {"type": "object"},
                            },
                        },
                        responses={
                            "202": {
                                "description": "sent; the result arrives later (GET, or the command channel)"
                            },
                            "400": {"description": "unknown command or arguments that break the contract"},
                            "403": {"description": "the role may not send this command"},
                            "404": {"description": "no such device"},
                            "409": {"description": "revoked device, or a command only routing sends"},
                            "503": {"description": "central has no MQTT connection"},
                        },
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
                )
            },
            "/api/v1/devices/{device_id}/live": {
                "get": _op(
                    "The device's live frames as server-sent events (channel live); start and stop the stream "
                    "with the live_start/live_stop commands. Who watched is audited",
                    "events.media",
                    [_DEVICE_ID],
                    responses={"200": {"description": "text/event-stream"}},
                )
            },
            "/api/v1/alerts": {
                "get": _op(
                    "Alerts, newest first, with the count of those not acknowledged (open)",
                    "events.view",
                    [("state", "query", "string", "open (default) or all"), _LIMIT],
                )
            },
            "/api/v1/alerts/{alert_id}/ack": {
                "post": _op(
                    "Acknowledge an alert (audited)",
                    "events.act",
                    [("alert_id", "path", "integer", "the alert's number")],
                )
            },
            "/api/v1/map": {
                "get": _op("Devices, units, open events and dispatches under way, with positions", "map.view")
            },
            "/api/v1/stream": {
                "get": _op(
                    "Live updates as server-sent events (channels event, device, unit, dispatch, dead_letter, "
                    "alert, command), each only to the roles that may see it; re-checks the account every few "
                    "seconds and ends (event end) when it is disabled",
                    None,
                    responses={"200": {"description": "text/event-stream"}},
                )
            },
            "/api/v1/stats": {
                "get": _op(
                    "Event counts per hour or day by group",
                    "stats.view",
                    [
                        ("period", "query", "string", " or ".join(STAT_PERIODS)),
                        ("by", "query", "string", " or ".join(STAT_GROUPS)),
                    ],
                )
            },
            "/api/v1/stats.csv": {
                "get": _op(
                    "The same as CSV (bucket, group, events)",
                    "stats.view",
                    [("period", "query", "string", ""), ("by", "query", "string", "")],
                    responses={"200": {"description": "text/csv"}},
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
                        ("before", "query", "integer", "sequence number to page back from"),
                        _LIMIT,
                    ],
                )
            },
            "/api/v1/audit/verify": {"get": _op("Check the audit hash chain", "audit.read")},
            "/api/v1/dead-letters": {
                "get": _op("Messages that broke the contract", "dead_letters.view", [_LIMIT])
            },
            "/api/v1/users": {"get": _op("Accounts", "users.read")},
            **routing_paths(),
        },
    }
