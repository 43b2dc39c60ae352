"""Device health: online or not, last seen, frame rate, detector time, outbox, disk, temperature, model and
version, with the problems spelt out. The table is drawn by the page from ``/api/v1/devices`` and kept
current by the live stream."""

from __future__ import annotations

from flask import Blueprint, render_template

from kuzet.central.web.auth import require

blueprint = Blueprint("devices", __name__)


@blueprint.get("/devices")
@require("devices.view")
def page():
    return render_template("devices.html")
