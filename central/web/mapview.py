"""The map of cameras, patrol units and open events, live. Tiles are optional (``[map] tile_url``): with
none the map is a plain dark plane with markers and a scale, so an offline centre still has a map."""

from __future__ import annotations

from flask import Blueprint, render_template

from kuzet.central.web.auth import require
from kuzet.central.web.views import central

blueprint = Blueprint("map", __name__)


@blueprint.get("/map")
@require("map.view")
def page():
    return render_template("map.html", map_config=central().config.map)
