"""The map of cameras, patrol units and open events, live. Tiles are optional: the site's own (``[map] tiles``,
served by central.web.tiles) or a tile server's (``[map] tile_url``); with none the map is a plain dark plane
with markers and a scale, so an offline centre still has a map."""

from __future__ import annotations

from flask import Blueprint, render_template

from kuzet.central.web.auth import require
from kuzet.central.web.tiles import page_settings
from kuzet.central.web.units import dispatch_words
from kuzet.central.web.views import central

blueprint = Blueprint("map", __name__)


@blueprint.get("/map")
@require("map.view")
def page():
    map_config = central().config.map
    return render_template(
        "map.html", map_config=map_config, tiles=page_settings(map_config), map_words=dispatch_words()
    )
