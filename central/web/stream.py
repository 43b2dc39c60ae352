"""The live stream (server-sent events) that keeps every open page current without reloads.

Each open page holds one subscription to ``central.hub``. An update is passed on only to users allowed to see
its channel; events are re-read from the database so that every page gets the same full row, whatever the
publisher put in the update.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app

from central.store import queries
from central.web.auth import current_user, require
from central.web.views import central

blueprint = Blueprint("stream", __name__)

CHANNEL_PERMISSION = {
    "event": "events.view",
    "device": "devices.view",
    "unit": "map.view",
    "dispatch": "events.view",
    "dead_letter": "dead_letters.view",
    "alert": "events.view",  # routing's alerts: no patrol free, a dispatch escalated
}


def _shape(db, channel: str, data: dict) -> dict | None:
    if channel == "event" and data.get("event_id"):
        return queries.get_event(db, data["event_id"])
    if channel == "device" and data.get("device_id"):
        return queries.get_device(db, data["device_id"]) or data
    return data


@blueprint.get("/api/v1/stream")
@require(None)
def live():
    user = current_user()
    the_central = central()
    heartbeat = current_app.config["SSE_HEARTBEAT_S"]
    closing = current_app.extensions["kuzet.closing"]
    channels = {channel for channel, permission in CHANNEL_PERMISSION.items() if user.can(permission)}

    def generate():
        with the_central.hub.subscribe() as subscription:
            yield "retry: 3000\n: connected\n\n"
            db = the_central.db()
            while not closing.is_set():
                update = subscription.get(timeout=heartbeat)
                if update is None:
                    yield ": keep-alive\n\n"  # also finds out, by failing, that the page has gone
                    continue
                if update.channel not in channels:
                    continue
                data = _shape(db, update.channel, update.data)
                if data is None:
                    continue
                payload = json.dumps(data, separators=(",", ":"), default=str)
                yield f"id: {update.seq}\nevent: {update.channel}\ndata: {payload}\n\n"

    return Response(
        generate(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
