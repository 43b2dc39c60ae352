"""What a confirmed match sets off, through routing's own doors (central.operations): a missing person gets the
nearest free patrol sent to check on them; a wanted person, an intercept by every free unit around the camera.
Nothing here runs for a match nobody has confirmed."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import ngettext

from kuzet.central.operations import NotRunning, Operations
from kuzet.central.routing.service import RoutingError


def direction_text(bearing: float | None) -> str:
    """A compass bearing as words and degrees ("north-east (47°)"); "unknown" where the camera cannot tell
    (no ground calibration in map coordinates, or the person stood still)."""
    if bearing is None:
        return _("unknown")
    # The eight points of the compass, clockwise from north (translated when asked: the reader's language).
    points = (
        _("north"),
        _("north-east"),
        _("east"),
        _("south-east"),
        _("south"),
        _("south-west"),
        _("west"),
        _("north-west"),
    )
    return f"{points[round(bearing / 45) % 8]} ({round(bearing) % 360}°)"


def dispatch_confirmed(operations: Operations, match: dict, actor: str) -> str:
    """Send patrols for a confirmed match; the line the operator reads about what was sent (or why not)."""
    event_id = match["event_id"]
    try:
        routing = operations.dispatching()
        if match["category"] == "wanted":
            heading = _(
                "Direction of travel: %(direction)s.", direction=direction_text(match["direction_deg"])
            )
            sent = operations.intercept(
                actor,
                event_id=event_id,
                direction_deg=match["direction_deg"],
                description=_("Intercept: confirmed watchlist match, wanted person") + ". " + heading,
            )
            sent_line = ngettext(
                "%(num)d patrol sent to intercept around the camera.",
                "%(num)d patrols sent to intercept around the camera.",
                len(sent),
            )
            return sent_line + " " + heading
        nearest = routing.recommend(event_id, limit=1)
        if not nearest:
            return _("No free patrol nearby: send one by hand.")
        unit = nearest[0]
        operations.assign_unit(
            event_id, unit["device_id"], actor, note=_("Check on a missing person: confirmed watchlist match")
        )
        return _("Nearest patrol %(unit)s sent to check.", unit=unit["callsign"] or unit["device_id"])
    except NotRunning:
        return _("Routing is not running: send a patrol by hand.")
    except RoutingError as exc:
        return _("No patrol sent: %(reason)s", reason=str(exc))
