"""The watchlist's pages (/watchlist) and JSON API (/api/v1/watchlist), all under ``watchlist.manage``.

Every view and every change is audited by ``entries``; enrolment photos are checked and embedded here by the
``Enroller`` (refused with the reason). The enrolment page shows what the list's size costs the inspectors: the
expected false possible matches per 10,000 faces the cameras see, from the measured false-match rate."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from kuzet.central.watchlist import entries
from kuzet.central.watchlist.enrolment import Enroller, FacesUnavailable, PhotoRefused
from kuzet.central.watchlist.localtime import install
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.i18n import site_zone
from kuzet.central.web.views import central, error_response
from kuzet.models.faces.matching import MEASURED_FALSE_MATCH_RATE, false_matches_per_10000

PERMISSION = "watchlist.manage"
MAX_PHOTO_BYTES = 12 << 20  # a phone's or a case file's photo; the rest of the app keeps its 1 MiB limit
ENROLLER_KEY = "kuzet.watchlist.enroller"

blueprint = Blueprint("watchlist", __name__, url_prefix="/watchlist", template_folder="templates")
api = Blueprint("watchlist_api", __name__, url_prefix="/api/v1/watchlist")
blueprint.record_once(install)


@blueprint.record_once
def _enroller(state) -> None:
    state.app.extensions.setdefault(ENROLLER_KEY, Enroller())


def _allow_photo_uploads(endpoint: str | None, values: dict | None) -> None:
    # A URL value preprocessor runs before every before_request hook, so the larger limit is in place before
    # the log-in check reads the form for its CSRF token.
    if endpoint in ("watchlist.add_photo", "watchlist_api.api_add_photo"):
        request.max_content_length = MAX_PHOTO_BYTES


blueprint.url_value_preprocessor(_allow_photo_uploads)
api.url_value_preprocessor(_allow_photo_uploads)


def enroller() -> Enroller:
    return current_app.extensions[ENROLLER_KEY]


def _actor() -> str:
    return current_user().username


def false_alarms(entry_count: int) -> dict:
    """Expected false possible matches per 10,000 faces at this size and at the next size up, for the page."""
    return {
        "entries": entry_count,
        "per_10000": round(false_matches_per_10000(MEASURED_FALSE_MATCH_RATE, max(1, entry_count)), 1),
        "per_10000_at_1000": round(false_matches_per_10000(MEASURED_FALSE_MATCH_RATE, 1000), 1),
    }


def _refusal(exc: entries.EntryError):
    """400 for malformed input; 409 for a well-formed expiry date the watchlist's rules do not allow."""
    return error_response(409 if isinstance(exc, entries.ExpiryRefused) else 400, str(exc))


def _body() -> dict:
    body = request.get_json(silent=True)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise entries.EntryError(_("The body must be a JSON object."))
    return body


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("removed_at", "removed_by")}


# --- pages ---------------------------------------------------------------------------------------------------


@blueprint.get("/")
@require(PERMISSION)
def page():
    db = central().db()
    rows = entries.listing(db, _actor())
    return render_template("watchlist_list.html", entries=rows, cost=false_alarms(entries.current_count(db)))


@blueprint.post("/")
@require(PERMISSION)
def create():
    try:
        entry_id = entries.create(central().db(), _actor(), entries.parse_input(request.form, site_zone()))
    except entries.EntryError as exc:
        flash(str(exc), "error")
        return redirect(url_for("watchlist.page"))
    flash(_("Entry saved. Add a photo so that cameras can match it."), "ok")
    return redirect(url_for("watchlist.entry_page", entry_id=entry_id))


@blueprint.get("/<entry_id>")
@require(PERMISSION)
def entry_page(entry_id: str):
    try:
        row = entries.view(central().db(), _actor(), entry_id)
    except LookupError as exc:
        return error_response(404, str(exc))
    return render_template("watchlist_entry.html", entry=row, categories=entries.CATEGORIES)


@blueprint.post("/<entry_id>")
@require(PERMISSION)
def edit(entry_id: str):
    try:
        entries.update(central().db(), _actor(), entry_id, entries.parse_input(request.form, site_zone()))
        flash(_("Entry saved."), "ok")
    except entries.EntryError as exc:
        flash(str(exc), "error")
    except LookupError as exc:
        return error_response(404, str(exc))
    return redirect(url_for("watchlist.entry_page", entry_id=entry_id))


@blueprint.post("/<entry_id>/photos")
@require(PERMISSION)
def add_photo(entry_id: str):
    upload = request.files.get("photo")
    data = upload.read() if upload else b""
    try:
        face = enroller().enrol(data)
        entries.add_photo(central().db(), _actor(), entry_id, data, face)
        flash(_("Photo enrolled."), "ok")
    except (PhotoRefused, entries.EntryError) as exc:
        flash(_("Photo refused: %(reason)s", reason=str(exc)), "error")
    except FacesUnavailable as exc:
        return error_response(503, str(exc))
    except LookupError as exc:
        return error_response(404, str(exc))
    return redirect(url_for("watchlist.entry_page", entry_id=entry_id))


@blueprint.post("/<entry_id>/remove")
@require(PERMISSION)
def remove(entry_id: str):
    try:
        entries.remove(central().db(), _actor(), entry_id, request.form.get("note", ""))
    except LookupError as exc:
        return error_response(404, str(exc))
    flash(_("Entry removed from the watchlist and from the cameras."), "ok")
    return redirect(url_for("watchlist.page"))


@blueprint.get("/<entry_id>/photos/<photo_id>")
@require(PERMISSION)
def photo(entry_id: str, photo_id: str):
    try:
        data = entries.photo(central().db(), _actor(), entry_id, photo_id)
    except LookupError as exc:
        return error_response(404, str(exc))
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


# --- API -----------------------------------------------------------------------------------------------------


@api.get("")
@require(PERMISSION)
def api_list():
    db = central().db()
    return jsonify(
        entries=entries.listing(db, _actor()), false_alarms=false_alarms(entries.current_count(db))
    )


@api.post("")
@require(PERMISSION)
def api_create():
    try:
        entry_id = entries.create(central().db(), _actor(), entries.parse_input(_body(), site_zone()))
    except entries.EntryError as exc:
        return _refusal(exc)
    return jsonify(id=entry_id), 201


@api.get("/<entry_id>")
@require(PERMISSION)
def api_entry(entry_id: str):
    try:
        return jsonify(_public(entries.view(central().db(), _actor(), entry_id)))
    except LookupError as exc:
        return error_response(404, str(exc))


@api.put("/<entry_id>")
@require(PERMISSION)
def api_edit(entry_id: str):
    try:
        entries.update(central().db(), _actor(), entry_id, entries.parse_input(_body(), site_zone()))
    except entries.EntryError as exc:
        return _refusal(exc)
    except LookupError as exc:
        return error_response(404, str(exc))
    return jsonify(id=entry_id)


@api.post("/<entry_id>/photos")
@require(PERMISSION)
def api_add_photo(entry_id: str):
    """The photo as the request body (image/jpeg or image/png)."""
    data = request.get_data()
    try:
        face = enroller().enrol(data)
        photo_id = entries.add_photo(central().db(), _actor(), entry_id, data, face)
    except (PhotoRefused, entries.EntryError) as exc:
        return error_response(409, str(exc))  # a well-formed photo or request the watchlist cannot take
    except FacesUnavailable as exc:
        return error_response(503, str(exc))
    except LookupError as exc:
        return error_response(404, str(exc))
    return jsonify(id=photo_id, face_width=round(face.box[2])), 201


@api.delete("/<entry_id>")
@require(PERMISSION)
def api_remove(entry_id: str):
    try:
        note = str(_body().get("note") or "")
        entries.remove(central().db(), _actor(), entry_id, note)
    except entries.EntryError as exc:
        return error_response(400, str(exc))
    except LookupError as exc:
        return error_response(404, str(exc))
    return "", 204
