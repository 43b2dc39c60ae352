"""An incident's evidence package for the protocol, in one click: the clip and snapshot as they arrived, the
facts, the dispatch history and the audit entries about it, with a SHA-256 manifest (``sha256sum -c`` reads
MANIFEST.sha256), as a zip streamed while it is written, so a long clip never sits whole in memory.

The export is audited before the first byte leaves, and only roles with ``evidence.export`` may ask for it.
Media are checked against their SHA-256 names first: an altered file is not exported (409, and an alert).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

from flask import Blueprint, Response, abort, stream_with_context
from flask_babel import gettext as _

from kuzet.central.auth import audit
from kuzet.central.store import integrity, queries
from kuzet.central.web import i18n
from kuzet.central.web.auth import current_user, require
from kuzet.central.web.services import services
from kuzet.central.web.views import central
from kuzet.shared import timeutil

blueprint = Blueprint("evidence", __name__)

CHUNK = 1 << 16
EXTENSIONS = {"video/mp4": "mp4", "image/jpeg": "jpg", "image/png": "png", "video/x-matroska": "mkv"}


class _Chunks:
    """What zipfile writes, handed on as it comes (a write-only, unseekable stream: zipfile then writes each
    entry's sizes after its data)."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> Iterator[bytes]:
        parts, self._parts = self._parts, []
        yield from parts


def _pieces(source: bytes | Path) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
        return
    with source.open("rb") as file:
        while piece := file.read(CHUNK):
            yield piece


def stream_zip(files: list[tuple[str, bytes | Path]], manifest_note: dict) -> Iterator[bytes]:
    """The zip of ``files`` (name, bytes or a file), then MANIFEST.sha256 and manifest.json with every file's
    SHA-256 and size as written."""
    out = _Chunks()
    listed: list[dict] = []
    # Stored, not deflated: clips and snapshots are compressed already; the JSON is small.
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, source in files:
            digest, size = hashlib.sha256(), 0
            with archive.open(name, "w", force_zip64=True) as entry:
                for piece in _pieces(source):
                    entry.write(piece)
                    digest.update(piece)
                    size += len(piece)
                    yield from out.take()
            listed.append({"file": name, "sha256": digest.hexdigest(), "bytes": size})
        archive.writestr("MANIFEST.sha256", "".join(f"{f['sha256']}  {f['file']}\n" for f in listed))
        archive.writestr("manifest.json", json.dumps({**manifest_note, "files": listed}, indent=2))
    yield from out.take()


def _checked_media(db, row: dict | None) -> Path | None:
    if row is None:
        return None
    path = services().media.path(row["sha256"])
    if path is None:
        return None  # removed by retention: the package says so in facts.json
    try:
        return integrity.checked(db, services().media.root, row)
    except integrity.MediaAltered as exc:
        abort(
            409, _("Media %(sha)s is not served: %(why)s (an alert was raised).", sha=row["sha256"], why=exc)
        )


def _json(value) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode()


@blueprint.get("/events/<event_id>/evidence.zip")
@require("evidence.export")
def export(event_id: str):
    db = central().db()
    event = queries.get_event(db, event_id)
    if event is None:
        abort(404, _("No event %(id)s.", id=event_id))
    media = queries.event_media(db, event)
    dispatches = i18n.with_notes(queries.dispatch_history(db, event_id))  # "note": the exporter's language
    targets = [f"event:{event_id}", *(d["dispatch_id"] for d in dispatches)]
    audit_entries = sorted(
        (entry for target in targets for entry in audit.entries(db, target=target, limit=100_000)),
        key=lambda entry: entry["seq"],
    )
    files: list[tuple[str, bytes | Path]] = []
    for kind, row in (("clip", media["clip_media"]), ("snapshot", media["snapshot"])):
        path = _checked_media(db, row)
        if path is not None:
            files.append((f"{kind}.{EXTENSIONS.get(row['content_type'], 'bin')}", path))
    timezone = central().config.site.timezone
    facts = {
        "event": event,
        "camera": queries.get_device(db, event["device"]),
        "site_timezone": timezone,
        "started_local": i18n.full_time(event.get("started_at")),
        "ended_local": i18n.full_time(event.get("ended_at")),
        # For the people who read the package: the event's kind and states in the exporting user's language.
        "language": i18n.language(),
        "words": {
            "type": i18n.label(i18n.EVENT_TYPES, event.get("event_type")),
            "severity": i18n.label(i18n.SEVERITIES, event.get("severity")),
            "status": i18n.label(i18n.EVENT_STATUSES, event.get("status")),
        },
        "media": {
            "snapshot": media["snapshot"],
            "clip": media["clip_media"] or media["clip"],
        },
    }
    files += [
        ("facts.json", _json(facts)),
        ("dispatches.json", _json(dispatches)),
        ("audit.json", _json(audit_entries)),
    ]
    user = current_user()
    # Audited before anything leaves: an interrupted download was still an export.
    audit.append(
        db,
        user.username,
        "evidence.export",
        f"event:{event_id}",
        {"files": [name for name, _source in files], "audit_entries": len(audit_entries)},
    )
    note = {
        "event_id": event_id,
        "exported_by": user.username,
        "exported_at": timeutil.now_wire(),
        "site": central().config.central.site,
        "site_timezone": timezone,
    }
    response = Response(stream_with_context(stream_zip(files, note)), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="kuzet-evidence-{event_id}.zip"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
