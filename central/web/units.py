"""The unit board (``/units``): every patrol with its status in words, how long it has been in it (a live
timer), its current incident and its distance to the incident the operator selects; from here an operator
sends the nearest unit or a chosen one, or diverts a busy unit to a more urgent incident. The rows come from
``/api/v1/unit-board`` (central.web.dispatch); every change goes through the one door."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import gettext as _

from kuzet.central.routing import board
from kuzet.central.routing import lifecycle as lc
from kuzet.central.web.auth import require

blueprint = Blueprint("units", __name__)


def status_words() -> dict[str, str]:
    """Each status key of the board (a unit's, or its dispatch's state) in words."""
    return {
        board.AVAILABLE: _("Available"),
        board.BUSY: _("Busy"),
        board.OFF_DUTY: _("Off duty"),
        board.OFFLINE: _("Offline"),
        board.REVOKED: _("Revoked"),
        lc.PROPOSED: _("Awaiting confirmation"),
        lc.SENT: _("Sent, not yet acknowledged"),
        lc.ACKNOWLEDGED: _("Acknowledged"),
        lc.EN_ROUTE: _("En route"),
        lc.ON_SCENE: _("On scene"),
    }


def dispatch_words() -> dict[str, str]:
    """What the board's and the map's dispatch buttons and messages say (the scripts take them from here)."""
    return {
        "send": _("Send"),
        "send_nearest": _("Send nearest"),
        "nearest": _("nearest"),
        "divert": _("Divert here"),
        "sent": _("Sent %(unit)s"),
        "diverted": _("%(unit)s diverted; the other incident waits for the next free unit"),
        "divert_confirm": _(
            "Take %(unit)s off the %(old)s incident and send it to this %(new)s one? "
            "The %(old)s incident goes back to waiting for the next free unit."
        ),
        "divert_reason": _("diverted to a more urgent incident"),
        "failed": _("Could not send"),
        "no_incident": _("Select an incident first"),
        "no_free": _("No free unit"),
        "choose_unit": _("Choose a unit…"),
        "none": _("—"),
        "m": _("%(n)s m"),
        "km": _("%(n)s km"),
    }


@blueprint.get("/units")
@require("events.view")
def page():
    return render_template(
        "units.html",
        selected=request.args.get("event", ""),
        words={"status": status_words(), **dispatch_words()},
    )
