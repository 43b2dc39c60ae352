"""What a confirmed match sets off, through routing's own doors (central.operations): a missing person gets the
nearest free patrol sent to check on them; a wanted person, an intercept by every free unit around the camera.
Nothing here runs for a match nobody has confirmed."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import ngettext

from kuzet.central.operations import NotRunning, Operations
from kuzet.central.routing.service import RoutingError


def dispatch_confirmed(operations: Operations, match: dict, actor: str) -> str:
    """Send patrols for a confirmed match; the line the operator reads about what was sent (or why not)."""
    event_id = match["event_id"]
    try:
        routing = operations.dispatching()
        if match["category"] == "wanted":
            sent = operations.intercept(
                actor, event_id=event_id, description=_("Intercept: confirmed watchlist match, wanted person")
            )
            return ngettext(
                "%(num)d patrol sent to intercept around the camera.",
                "%(num)d patrols sent to intercept around the camera.",
                len(sent),
            )
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
