"""Serving media kept in an object store (``[media] s3_endpoint``) through central: the page's player asks
central, central checks the user's role and audits the view (``events.media`` in ``central.web.events``), then
streams the bytes from the bucket a chunk at a time, byte ranges included (a video player seeks with them).
Nothing is buffered whole, and the bucket need not be reachable from the operators' rooms.

Evidence is served only as it arrived: a whole-object read is hashed as it streams, and an object whose bytes
do not match its name raises the same alert as an altered file in the media folder (the bytes have gone out by
then: the alert is what stops it being used)."""

from __future__ import annotations

import hashlib
import re

from flask import Response, abort, stream_with_context
from flask_babel import gettext as _

from kuzet.central import alerts
from kuzet.central.store import integrity, portable
from kuzet.central.store.media import MediaUnavailable

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int | None] | None:
    """(start, end inclusive or None) of a single ``Range: bytes=...``; None when there is no header.
    A range that cannot be served answers 416."""
    if not header:
        return None
    match = _RANGE.match(header.replace(" ", ""))
    if not match or match.groups() == ("", ""):
        abort(416)
    first, last = match.groups()
    if first == "":  # the last N bytes
        return max(0, size - int(last)), None
    start = int(first)
    if start >= size:
        abort(416)
    return start, int(last) if last else None


def stored_size(media, sha256: str) -> int:
    """The object's size; 404 when the bucket no longer has it, 503 while the object store cannot answer."""
    try:
        size = media.size(sha256)
    except MediaUnavailable as exc:
        abort(503, _("The media store cannot be reached now, try again shortly (%(why)s).", why=exc))
    if size is None:
        abort(404, _("No such media (it may have been removed by retention)."))
    return size


def stream(media, db, row: dict, size: int, range_header: str) -> Response:
    sha256 = row["sha256"]
    wanted = parse_range(range_header, size)
    start, end = wanted if wanted is not None else (0, None)
    try:
        found = media.read(sha256, start, end)
    except MediaUnavailable as exc:
        abort(503, _("The media store cannot be reached now, try again shortly (%(why)s).", why=exc))
    if found is None:
        abort(404, _("No such media (it may have been removed by retention)."))
    chunks = found.chunks if wanted is not None else _checked(found.chunks, db, row)
    response = Response(stream_with_context(chunks), status=206 if wanted is not None else 200)
    response.mimetype = row["content_type"]
    response.headers["Content-Length"] = str(found.length)
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["ETag"] = f'"{sha256}"'
    if wanted is not None:
        response.headers["Content-Range"] = (
            f"bytes {found.start}-{found.start + found.length - 1}/{found.size}"
        )
    return response


def _checked(chunks, db, row: dict):
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != row["sha256"]:
        with portable.transaction(db):
            integrity.alert_altered(db, row, alerts.say("object_altered"))
