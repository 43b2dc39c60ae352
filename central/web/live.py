"""Watching a device's live stream: its ``live`` frames, relayed as server-sent events to the one viewer
who asked for them (the page's own stream never carries frames). Starting and stopping the stream at the
device is a command (``live_start``/``live_stop`` through the command API); who watched which device, from
when to when and how many frames, goes into the audit log."""

from __future__ import annotations

import time

from flask import Blueprint, abort
from flask_babel import gettext as _

from kuzet.central.auth import audit
from kuzet.central.store import queries
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.stream import sse
from kuzet.central.web.views import central

blueprint = Blueprint("live", __name__)


@blueprint.get("/api/v1/devices/<device_id>/live")
@require("events.media")
def watch(device_id: str):
    the_central = central()
    if queries.get_device(the_central.db(), device_id) is None:
        abort(404, _("No device %(id)s.", id=device_id))
    viewer = current_user().username
    target = f"device:{device_id}"
    audit.append(the_central.db(), viewer, "live.watch", target, {})
    started = time.monotonic()
    relayed = {"frames": 0}

    def for_this_device(update) -> bool:
        if update.data.get("device") != device_id:
            return False
        relayed["frames"] += 1
        return True

    def ended(why: str) -> None:
        detail = {"frames": relayed["frames"], "seconds": round(time.monotonic() - started, 1), "why": why}
        audit.append(the_central.db(), viewer, "live.watch_end", target, detail)

    return sse(lambda user: {"live"} if user.can("events.media") else set(), for_this_device, ended)
