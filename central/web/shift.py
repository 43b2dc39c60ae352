"""The shift page: the shift log (operators' notes and hand-overs, audited) and "my incidents", what the
logged-in operator acknowledged, assigned, dispatched or closed in the running shift. Shifts follow
``[site] shifts`` in the site's time zone."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from kuzet.central.store import shift_log, shifts
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.views import central
from kuzet.shared import timeutil

blueprint = Blueprint("shift", __name__)


@blueprint.get("/shift")
@require("events.view")
def page():
    return _render()


@blueprint.post("/shift/log")
@require("events.act")
def add_entry():
    kind, text = request.form.get("kind", ""), request.form.get("text", "")
    try:
        shift_log.add(central().db(), current_user().username, kind, text)
    except shift_log.ShiftLogError:
        flash(_problem(kind, text), "error")
        return _render(draft={"kind": kind, "text": text}), 400  # what was written stays in the form
    flash(_("Added to the shift log."), "ok")
    return redirect(url_for("shift.page"))


def _problem(kind: str, text: str) -> str:
    """Why an entry was refused, in the reader's words (ShiftLogError's own text is English, for logs)."""
    if kind not in shift_log.KINDS:
        return _("Choose a note or a hand-over.")
    if not text.strip():
        return _("Write something first: the entry is empty.")
    return _("The entry is too long: at most %(n)s characters.", n=shift_log.MAX_TEXT)


def _render(draft: dict | None = None) -> str:
    config = central().config.site
    running, previous = shifts.recent(timeutil.utc_now(), config.shifts, i18n.site_zone(), 2)
    db = central().db()
    return render_template(
        "shift.html",
        shift=running,
        previous=previous,
        # The previous shift's entries stay in view: its hand-over is what this shift starts from.
        entries=shift_log.entries(db, previous.start_wire, running.end_wire),
        mine=shift_log.my_incidents(db, current_user().username, running.start_wire, running.end_wire),
        kinds=shift_log.KINDS,
        draft=draft or {"kind": "note", "text": ""},
        work_words=i18n.WORK_DONE,
        config_timezone=config.timezone,
    )
