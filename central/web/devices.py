"""Device health: online or not, last seen, frame rate, detector time, outbox, disk, temperature, model and
version, with the problems spelt out; and central's own disks (data, media): free space, with a warning below
``[storage] min_free_mb``. The table is drawn by the page from ``/api/v1/devices`` and kept
current by the live stream."""

from __future__ import annotations

from flask import Blueprint, render_template

from kuzet.central.ingest.store_health import disks
from kuzet.central.web.auth import require
from kuzet.central.web.views import central

blueprint = Blueprint("devices", __name__)


@blueprint.get("/devices")
@require("devices.view")
def page():
    return render_template(
        "devices.html", disks=disks(central()), min_free_mb=central().config.storage.min_free_mb
    )
