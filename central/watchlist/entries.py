"""Watchlist entries and their photos: checked, stored, and every action and every view written to the audit
log (central/auth/audit.py) in the same transaction. Names appear in the audit as the entry's id and case
number only."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from flask_babel import gettext as _

from kuzet.central.auth import audit
from kuzet.central.store import portable
from kuzet.central.watchlist import schema
from kuzet.central.watchlist.enrolment import EnrolledFace
from kuzet.central.web import i18n
from kuzet.shared import ids, timeutil

CATEGORIES = ("missing", "wanted")
MAX_DAYS = 366  # an entry lapses within a year unless renewed: nobody stays listed by oversight
LIMITS = {"name": 200, "case_number": 100, "authority": 200, "reason": 1000}
FIELDS = ("category", "name", "case_number", "authority", "reason", "expires_on")
MAX_PHOTOS = 10


class EntryError(ValueError):
    """Input that cannot be saved; ``str()`` says which field and why, for the supervisor."""


class ExpiryRefused(EntryError):
    """A well-formed expiry date the watchlist's rules do not allow (past, or beyond MAX_DAYS)."""


@dataclass(frozen=True)
class EntryInput:
    category: str
    name: str
    case_number: str
    authority: str
    reason: str
    expires_at: str  # UTC wire time: the end of the chosen day in the site's time zone


def parse_input(form: dict, zone: ZoneInfo, today: datetime | None = None) -> EntryInput:
    """The entry's fields from a form or JSON body, or EntryError naming what is wrong. ``zone`` is the site's
    (``[site] timezone``): the expiry date is a local day, ending at 23:59:59 there."""
    values = {name: str(form.get(name) or "").strip() for name in FIELDS}
    if values["category"] not in CATEGORIES:
        raise EntryError(_("Category must be 'missing' or 'wanted'."))
    labels = {
        "name": _("Name"),
        "case_number": _("Case number"),
        "authority": _("Authority"),
        "reason": _("Reason"),
    }
    for name, limit in LIMITS.items():
        if not values[name]:
            raise EntryError(_("The field '%(field)s' is required.", field=labels[name]))
        if len(values[name]) > limit:
            raise EntryError(
                _(
                    "The field '%(field)s' is longer than %(limit)d characters.",
                    field=labels[name],
                    limit=limit,
                )
            )
    try:
        day = i18n.parse_typed(values["expires_on"]).date()
    except ValueError:
        example = i18n.typed_day(datetime(2026, 12, 31))
        raise EntryError(_("The expiry date must be a date such as %(example)s.", example=example)) from None
    local_today = (today or timeutil.utc_now()).astimezone(zone).date()
    if day < local_today:
        raise ExpiryRefused(_("The expiry date is in the past."))
    if day > local_today + timedelta(days=MAX_DAYS):
        raise ExpiryRefused(
            _("An entry may be listed for at most %(days)d days; renew it later.", days=MAX_DAYS)
        )
    end_of_day = datetime.combine(day, time(23, 59, 59), zone)
    return EntryInput(
        values["category"],
        values["name"],
        values["case_number"],
        values["authority"],
        values["reason"],
        timeutil.to_wire(end_of_day),
    )


def _insert(db, table: str, record: dict) -> None:
    # Plain SQL: sqlite-utils' insert/update commit on their own, which would end the audited transaction early.
    columns = ", ".join(record)
    marks = ", ".join(f":{name}" for name in record)
    portable.execute(db, f"INSERT INTO {table} ({columns}) VALUES ({marks})", record)


def _update(db, entry_id: str, record: dict) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in record)
    portable.execute(
        db, f"UPDATE watchlist_entries SET {assignments} WHERE id = :id", {**record, "id": entry_id}
    )


def _audit(db, actor: str, action: str, entry_id: str, **detail) -> None:
    audit.append(db, actor, f"watchlist.{action}", f"watchlist/{entry_id}", detail)


def create(db, actor: str, entry: EntryInput) -> str:
    schema.ensure(db)
    entry_id, now = ids.new_id(), timeutil.now_wire()
    with audit.transaction(db):
        _insert(
            db,
            "watchlist_entries",
            {
                "id": entry_id,
                **entry.__dict__,
                "created_at": now,
                "created_by": actor,
                "updated_at": now,
                "updated_by": actor,
            },
        )
        _audit(db, actor, "create", entry_id, category=entry.category, case_number=entry.case_number)
    return entry_id


def _row(db, entry_id: str) -> dict:
    row = portable.row(db, "SELECT * FROM watchlist_entries WHERE id = ? AND removed_at IS NULL", [entry_id])
    if row is None:
        raise LookupError(_("No such watchlist entry."))
    return row


def update(db, actor: str, entry_id: str, entry: EntryInput) -> None:
    schema.ensure(db)
    with audit.transaction(db):
        before = _row(db, entry_id)
        changed = sorted(k for k, v in entry.__dict__.items() if before[k] != v)
        _update(db, entry_id, {**entry.__dict__, "updated_at": timeutil.now_wire(), "updated_by": actor})
        _audit(db, actor, "edit", entry_id, changed=changed, case_number=entry.case_number)


def remove(db, actor: str, entry_id: str, note: str) -> None:
    """Off the list and off the cameras: its photos and embeddings are deleted, the row stays for the record."""
    schema.ensure(db)
    with audit.transaction(db):
        row = _row(db, entry_id)
        portable.execute(db, "DELETE FROM watchlist_photos WHERE entry_id = ?", [entry_id])
        _update(db, entry_id, {"removed_at": timeutil.now_wire(), "removed_by": actor})
        _audit(db, actor, "remove", entry_id, case_number=row["case_number"], note=note[:500])


def add_photo(db, actor: str, entry_id: str, jpeg: bytes, face: EnrolledFace) -> str:
    schema.ensure(db)
    photo_id = ids.new_id()
    with audit.transaction(db):
        row = _row(db, entry_id)
        count = portable.execute(
            db, "SELECT COUNT(*) FROM watchlist_photos WHERE entry_id = ?", [entry_id]
        ).fetchone()[0]
        if count >= MAX_PHOTOS:
            raise EntryError(_("An entry holds at most %(n)d photos.", n=MAX_PHOTOS))
        _insert(
            db,
            "watchlist_photos",
            {
                "id": photo_id,
                "entry_id": entry_id,
                "jpeg": jpeg,
                "sha256": hashlib.sha256(jpeg).hexdigest(),
                "embedding": np.asarray(face.embedding, np.float32).tobytes(),
                "face_box": json.dumps([round(v, 1) for v in face.box]),
                "sharpness": face.sharpness,
                "frontal": face.frontal,
                "added_at": timeutil.now_wire(),
                "added_by": actor,
            },
        )
        _update(db, entry_id, {"updated_at": timeutil.now_wire(), "updated_by": actor})
        _audit(db, actor, "add_photo", entry_id, photo_id=photo_id, case_number=row["case_number"])
    return photo_id


def listing(db, actor: str) -> list[dict]:
    """Every current entry (not removed), newest first, with its photo count; the view is audited."""
    schema.ensure(db)
    rows = portable.rows(
        db,
        "SELECT e.id, e.category, e.name, e.case_number, e.authority, e.expires_at, e.updated_at,"
        " (SELECT COUNT(*) FROM watchlist_photos p WHERE p.entry_id = e.id) AS photos"
        " FROM watchlist_entries e WHERE e.removed_at IS NULL ORDER BY e.created_at DESC",
    )
    audit.append(db, actor, "watchlist.view_list", "watchlist", {"entries": len(rows)})
    return rows


def view(db, actor: str, entry_id: str) -> dict:
    """One entry with its photos' ids (not their bytes); the view is audited."""
    schema.ensure(db)
    row = _row(db, entry_id)
    row["photo_ids"] = [
        r["id"]
        for r in portable.rows(
            db, "SELECT id FROM watchlist_photos WHERE entry_id = ? ORDER BY added_at", [entry_id]
        )
    ]
    _audit(db, actor, "view", entry_id, case_number=row["case_number"])
    return row


def photo(db, actor: str, entry_id: str, photo_id: str) -> bytes:
    """An enrolled photo's bytes; the view is audited."""
    schema.ensure(db)
    row = portable.row(
        db, "SELECT jpeg FROM watchlist_photos WHERE id = ? AND entry_id = ?", [photo_id, entry_id]
    )
    if row is None:
        raise LookupError(_("No such photo."))
    _audit(db, actor, "view_photo", entry_id, photo_id=photo_id)
    return row["jpeg"]


def current_embeddings(db, now: str | None = None) -> tuple[list[str], np.ndarray, str | None]:
    """(entry id per row, embeddings [N, 128], the earliest expiry) of every current entry: what the cameras'
    bundle holds. No names, no photos."""
    schema.ensure(db)
    now = now or timeutil.now_wire()
    rows = portable.rows(
        db,
        "SELECT e.id, e.expires_at, p.embedding FROM watchlist_photos p JOIN watchlist_entries e"
        " ON e.id = p.entry_id WHERE e.removed_at IS NULL AND e.expires_at > ? ORDER BY e.id, p.id",
        [now],
    )
    if not rows:
        return [], np.zeros((0, 128), np.float32), None
    embeddings = np.stack([np.frombuffer(r["embedding"], np.float32) for r in rows])
    return [r["id"] for r in rows], embeddings, min(r["expires_at"] for r in rows)


def current_count(db) -> int:
    schema.ensure(db)
    now = timeutil.now_wire()
    return portable.execute(
        db, "SELECT COUNT(*) FROM watchlist_entries WHERE removed_at IS NULL AND expires_at > ?", [now]
    ).fetchone()[0]
