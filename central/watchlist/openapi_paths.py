"""The watchlist's /api/v1 endpoints (central/watchlist/web.py) for central's one OpenAPI document."""

from __future__ import annotations

from kuzet.central.web.openapi import _TEXT, _created, _list, _op

PERMISSION = "watchlist.manage"
_ENTRY_ID = ("entry_id", "path", "string", "the watchlist entry's ULID")
ENTRY_BODY = {
    "type": "object",
    "required": ["category", "name", "case_number", "authority", "reason", "expires_on"],
    "properties": {
        "category": {"enum": ["missing", "wanted"]},
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
        "case_number": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"},
        "authority": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
        "reason": {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S"},
        "expires_on": {
            "type": "string",
            "format": "date",
            "description": "the last day, in the site's time zone",
        },
    },
}
_PHOTO = {"type": "string", "format": "binary"}


def watchlist_paths() -> dict:
    add_photo = _op(
        "Enrol a photo (the request body, JPEG or PNG): one clear face, or refused with the reason (409)",
        PERMISSION,
        [_ENTRY_ID],
        responses=_created("the photo enrolled", {"type": "object", "properties": {"id": _TEXT}}),
        errors=("400", "409", "413", "503"),  # 503: the face models are not installed on central
    )
    add_photo["requestBody"] = {
        "required": True,
        "content": {"image/jpeg": {"schema": _PHOTO}, "image/png": {"schema": _PHOTO}},
    }
    return {
        "/api/v1/watchlist": {
            "get": _op(
                "Current watchlist entries, and the expected false possible matches per 10,000 faces",
                PERMISSION,
                ok=_list("entries", false_alarms={"type": "object"}),
            ),
            "post": _op(
                "Create an entry",
                PERMISSION,
                body=ENTRY_BODY,
                responses=_created("the entry's id"),
                errors=("409",),
            ),
        },
        "/api/v1/watchlist/{entry_id}": {
            "get": _op("One entry (the view is audited)", PERMISSION, [_ENTRY_ID]),
            "put": _op("Change an entry", PERMISSION, [_ENTRY_ID], ENTRY_BODY, errors=("409",)),
            "delete": _op(
                "Remove an entry: off the list and the cameras, its photos deleted",
                PERMISSION,
                [_ENTRY_ID],
                {"type": "object", "properties": {"note": {"type": "string", "maxLength": 500}}},
                responses={"204": {"description": "removed"}},
                optional_body=True,
            ),
        },
        "/api/v1/watchlist/{entry_id}/photos": {"post": add_photo},
    }
