"""Possible matches (``watchlist_match`` events from the cameras) and a person's decision on each.

A match stays a *possible match* until someone with ``watchlist.review`` confirms or rejects it with a note;
nothing is dispatched before that. A confirmation of a missing person sends the nearest free patrol to check on
them; of a wanted person, an intercept around the camera (routing's own doors, through central.operations).
Rejections are kept and counted per camera and per entry: a camera with many false matches needs attention.
Every view and decision is audited.
"""

from __future__ import annotations

import json

from flask_babel import gettext as _

from kuzet.central.auth import audit
from kuzet.central.store import portable
from kuzet.central.watchlist import schema
from kuzet.shared import timeutil

DECISIONS = ("confirmed", "rejected")


class ReviewError(ValueError):
    """A decision that cannot be recorded; ``str()`` says why."""


def _match(row: dict) -> dict:
    attributes = json.loads(row.pop("attributes") or "{}")
    row.update(
        entry_id=attributes.get("entry_id"),
        distance=attributes.get("distance"),
        threshold=attributes.get("threshold"),
        face_sha256=attributes.get("face_sha256"),
        direction_deg=attributes.get("direction_deg"),  # None: the camera cannot tell compass bearings
        state=row.get("decision") or "possible",
    )
    return row


def _select(db) -> str:
    """The matches with their decision and entry; the entry's id is in the event's JSON attributes."""
    return (
        "SELECT ev.event_id, ev.device, ev.started_at, ev.lat, ev.lon, ev.snapshot_sha256, ev.attributes,"
        " r.decision, r.note, r.decided_by, r.decided_at, r.dispatch,"
        " en.name, en.category, en.case_number"
        " FROM events ev LEFT JOIN watchlist_reviews r ON r.event_id = ev.event_id"
        f" LEFT JOIN watchlist_entries en ON en.id = {portable.json_member(db, 'ev.attributes', 'entry_id')}"
        " WHERE ev.event_type = 'watchlist_match'"
    )


def listing(db, actor: str, limit: int = 200) -> list[dict]:
    """Newest first; the view is audited."""
    schema.ensure(db)
    rows = [
        _match(r) for r in portable.rows(db, f"{_select(db)} ORDER BY ev.started_at DESC LIMIT ?", [limit])
    ]
    audit.append(db, actor, "watchlist.view_matches", "watchlist/matches", {"shown": len(rows)})
    return rows


def get(db, event_id: str) -> dict:
    schema.ensure(db)
    rows = [_match(r) for r in portable.rows(db, f"{_select(db)} AND ev.event_id = ?", [event_id])]
    if not rows:
        raise LookupError(_("No such possible match."))
    return rows[0]


def view(db, actor: str, event_id: str) -> dict:
    """One match with the entry's first photo id, for the side-by-side page; the view is audited."""
    match = get(db, event_id)
    photo = portable.execute(
        db,
        "SELECT id FROM watchlist_photos WHERE entry_id = ? ORDER BY added_at LIMIT 1",
        [match["entry_id"]],
    ).fetchone()
    match["photo_id"] = photo[0] if photo else None
    audit.append(db, actor, "watchlist.view_match", f"event:{event_id}", {"entry_id": match["entry_id"]})
    return match


def decide(db, actor: str, event_id: str, decision: str, note: str) -> dict:
    """Record a person's decision (once); returns the match as decided. Dispatching is the caller's next step."""
    if decision not in DECISIONS:
        raise ReviewError(_("The decision must be 'confirmed' or 'rejected'."))
    note = (note or "").strip()
    if not note:
        raise ReviewError(_("Write a note: what you saw that confirms or rejects the match."))
    with audit.transaction(db):
        match = get(db, event_id)
        if match["decision"]:
            decided = _("confirmed") if match["decision"] == "confirmed" else _("rejected")
            raise ReviewError(_("This match was already %(decision)s.", decision=decided))
        portable.execute(
            db,
            "INSERT INTO watchlist_reviews (event_id, entry_id, device, decision, note, decided_by, decided_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [event_id, match["entry_id"], match["device"], decision, note[:1000], actor, timeutil.now_wire()],
        )
        audit.append(
            db, actor, f"watchlist.match_{decision}", f"event:{event_id}", {"entry_id": match["entry_id"]}
        )
    return get(db, event_id)


def record_arrival(db, event, site: str) -> None:
    """Audit a ``watchlist_match`` event state as it arrives from a camera (ingest's hook, through
    central.operations): who matched whom, when, how close, before any person has looked at it."""
    audit.append(
        db,
        event.device,
        "watchlist.match_received",
        f"event:{event.event_id}",
        {
            "site": site,
            "state": event.state,
            "seq": event.seq,
            "entry_id": event.attributes["entry_id"],
            "distance": event.attributes["distance"],
            "threshold": event.attributes["threshold"],
        },
    )


def record_dispatch(db, event_id: str, outcome: str) -> None:
    with portable.transaction(db):
        portable.execute(
            db, "UPDATE watchlist_reviews SET dispatch = ? WHERE event_id = ?", [outcome[:500], event_id]
        )


def rejections(db) -> dict[str, list[dict]]:
    """Rejected matches counted per camera and per entry, most first."""
    schema.ensure(db)
    per_camera = portable.rows(
        db,
        "SELECT device, COUNT(*) AS rejected FROM watchlist_reviews WHERE decision = 'rejected'"
        " GROUP BY device ORDER BY rejected DESC, device",
    )
    per_entry = portable.rows(
        db,
        "SELECT r.entry_id, en.name, en.case_number, COUNT(*) AS rejected FROM watchlist_reviews r"
        " LEFT JOIN watchlist_entries en ON en.id = r.entry_id WHERE r.decision = 'rejected'"
        " GROUP BY r.entry_id, en.name, en.case_number ORDER BY rejected DESC, r.entry_id",
    )
    return {"per_camera": per_camera, "per_entry": per_entry}
