"""The map of cameras, patrol units and open events, live. Tiles are optional: the site's own (``[map] tiles``,
served by central.web.tiles) or a tile server's (``[map] tile_url``); with none the map is a plain dark plane
with markers and a scale, so an offline centre still has a map."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _

from kuzet.central.web.auth import require
from kuzet.central.web.tiles import page_settings
from kuzet.central.web.units import dispatch_words, status_words
from kuzet.central.web.views import central

blueprint = Blueprint("map", __name__)


@blueprint.get("/map")
@require("map.view")
def page():
    map_config = central().config.map
    return render_template(
        "map.html", map_config=map_config, tiles=page_settings(map_config), map_words=map_words()
    )


def map_words() -> dict:
    """What the map's script shows (layers, legend, popups), in the operator's language."""
    return {
        **dispatch_words(),
        "status": status_words(),
        "online": _("online"),
        "layer_cameras": _("Cameras"),
        "layer_views": _("Camera views"),
        "layer_patrols": _("Patrols"),
        "layer_events": _("Open events"),
        "layer_dispatches": _("Dispatches"),
        "legend_camera": _("camera and its field of view"),
        "legend_event": _("open event (a number: several together)"),
        "legend_dispatch": _("dispatch (dashed: awaiting confirmation)"),
        "unit_board": _("Unit board"),
        "the_event": _("the event"),
    }
