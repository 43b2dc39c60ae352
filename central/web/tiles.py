"""Central serves the site's own map tiles (``[map] tiles``: central.tiles) at ``/map/tiles/{z}/{x}/{y}``,
so the map works with no internet. The source is opened once when the app is made; one that cannot be used
is logged and the map falls back to the plain grid, saying why, rather than keeping central from starting."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, url_for
from flask_babel import gettext as _

from kuzet.central.tiles import TileInfo, TileSourceError, open_tiles
from kuzet.central.web.auth import require

log = logging.getLogger(__name__)

KEY = "kuzet.tiles"
MAX_AGE_S = 7 * 24 * 3600  # tiles change only when a technician replaces the file
MISSING_MAX_AGE_S = 3600

blueprint = Blueprint("tiles", __name__)


@dataclass(frozen=True)
class SiteTiles:
    """What the map page needs to know: the tiles' URL template and zooms, or why there are none."""

    source: object | None = None
    problem: str = ""

    @property
    def info(self) -> TileInfo | None:
        return None if self.source is None else self.source.info


def _open(state) -> None:
    app = state.app
    central = app.extensions["kuzet.services"].central
    configured = central.config.map.tiles
    if configured is None:
        app.extensions[KEY] = SiteTiles()
        return
    path = configured if Path(configured).is_absolute() else central.data_dir / configured
    try:
        app.extensions[KEY] = SiteTiles(source=open_tiles(Path(path)))
    except (TileSourceError, OSError) as error:
        log.error("map tiles: %s; the map shows a plain grid", error)
        app.extensions[KEY] = SiteTiles(problem=str(error))


blueprint.record_once(_open)


def site_tiles() -> SiteTiles:
    return current_app.extensions[KEY]


def page_settings(map_config) -> dict:
    """The tile settings the map page hands to its script (data attributes)."""
    tiles = site_tiles()
    if tiles.info is not None:
        template = url_for("tiles.tile", z=0, x=0, y=0).replace("/0/0/0", "/{z}/{x}/{y}")
        return {
            "url": template,
            "min_zoom": tiles.info.min_zoom,
            "max_zoom": tiles.info.max_zoom,
            "attribution": map_config.tile_attribution,
            "problem": "",
        }
    return {
        "url": map_config.tile_url,
        "min_zoom": 0,
        "max_zoom": 19,
        "attribution": map_config.tile_attribution,
        "problem": _("Map tiles cannot be read (%(why)s): a plain grid is shown.", why=tiles.problem)
        if tiles.problem
        else "",
    }


@blueprint.get("/map/tiles/<int:z>/<int:x>/<int:y>")
@require("map.view")
def tile(z: int, x: int, y: int):
    source = site_tiles().source
    if source is None:
        abort(404, _("This site has no map tiles configured."))
    data = source.get(z, x, y)
    # Tiles are seen only by logged-in users: cached by their browser, never by a shared proxy.
    if data is None:
        # Panning past the tile set's edge asks for many of these: a short answer, remembered for an hour.
        response = Response(f"no tile {z}/{x}/{y}\n", status=404, mimetype="text/plain")
        response.cache_control.private = True
        response.cache_control.max_age = MISSING_MAX_AGE_S
        return response
    response = Response(data, mimetype=source.info.content_type)
    response.cache_control.private = True
    response.cache_control.max_age = MAX_AGE_S
    response.set_etag(hashlib.sha256(data).hexdigest()[:32])
    return response.make_conditional(request)
