"""The possible-match pages (/watchlist/matches), under ``watchlist.review``: the list with rejections per
camera and per entry, one match side by side (enrolled photo, captured face, scene, distance, camera, time),
and the decision with a note. The faces and scenes are event media: served by /media/<sha256> (audited there)."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from kuzet.central.watchlist import entries, matches
from kuzet.central.watchlist.dispatching import dispatch_confirmed
from kuzet.central.watchlist.localtime import install
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.services import services
from kuzet.central.web.views import central, error_response

PERMISSION = "watchlist.review"

blueprint = Blueprint(
    "watchlist_review", __name__, url_prefix="/watchlist/matches", template_folder="templates"
)
blueprint.record_once(install)


@blueprint.get("/")
@require(PERMISSION)
def page():
    db = central().db()
    rows = matches.listing(db, current_user().username)
    return render_template("watchlist_matches.html", matches=rows, rejections=matches.rejections(db))


@blueprint.get("/<event_id>")
@require(PERMISSION)
def match_page(event_id: str):
    try:
        match = matches.view(central().db(), current_user().username, event_id)
    except LookupError as exc:
        return error_response(404, str(exc))
    return render_template("watchlist_match.html", match=match)


@blueprint.get("/<event_id>/enrolled")
@require(PERMISSION)
def enrolled_photo(event_id: str):
    """The matched entry's enrolled photo, for the side-by-side view (audited as a photo view)."""
    db = central().db()
    try:
        match = matches.get(db, event_id)
        photo_id = request.args.get("photo", "")
        data = entries.photo(db, current_user().username, match["entry_id"], photo_id)
    except LookupError as exc:
        return error_response(404, str(exc))
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


@blueprint.post("/<event_id>")
@require(PERMISSION)
def decide(event_id: str):
    actor = current_user().username
    db = central().db()
    try:
        match = matches.decide(
            db, actor, event_id, request.form.get("decision", ""), request.form.get("note", "")
        )
    except matches.ReviewError as exc:
        flash(str(exc), "error")
        return redirect(url_for("watchlist_review.match_page", event_id=event_id))
    except LookupError as exc:
        return error_response(404, str(exc))
    if match["decision"] == "confirmed":
        outcome = dispatch_confirmed(services().operations, match, actor)
        matches.record_dispatch(db, event_id, outcome)
        flash(_("Match confirmed.") + " " + outcome, "ok")
    else:
        flash(_("Match rejected; the rejection is kept for this camera and this entry."), "ok")
    return redirect(url_for("watchlist_review.match_page", event_id=event_id))
