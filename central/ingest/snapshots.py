"""A batch's snapshots: each one's bytes into the media store as it comes, and their rows (the media row, the
event pointing at it) together in one transaction at the end. A burst of events brings as many snapshots, and
on PostgreSQL each statement and commit of its own was a round trip the next batch waited for."""

from __future__ import annotations

import hashlib

from kuzet.central.ingest import authority
from kuzet.central.store import portable
from kuzet.central.store.media import MediaStore, media_row
from kuzet.shared import messages


def put(media: MediaStore, message: messages.Snapshot) -> dict | None:
    """Store the snapshot's bytes; returns its media row, or None when they do not hash to its ``sha256``
    (nothing stored)."""
    data = messages.from_base64(message.data)
    if hashlib.sha256(data).hexdigest() != message.sha256:
        return None
    sha256 = media.put_bytes(data, message.content_type)
    return media_row(
        sha256, len(data), "snapshot", message.content_type, message.device, message.event_id,
        message.width, message.height,
    )  # fmt: skip


def record(conn, rows: list[dict]) -> None:
    """The rows of stored snapshots, and each event shows its own device's snapshot, in the caller's
    transaction: one statement each however many."""
    MediaStore.record(conn, rows)
    portable.executemany(
        conn,
        "UPDATE events SET snapshot_sha256 = ? WHERE event_id = ? AND device = ?",
        [(row["sha256"], row["event_id"], row["device"]) for row in rows],
    )


def store_one(conn, media: MediaStore, message: messages.Snapshot) -> str | None:
    """A snapshot kept while the media store refused it (``media_retry``), whole now: returns the event that
    shows it, if that event is stored."""
    row = put(media, message)
    if row is None:
        raise ValueError("snapshot sha256 does not match its data")
    with portable.transaction(conn):
        record(conn, [row])
    owner = authority.event_owners(conn, [message]).get(message.event_id)
    return message.event_id if owner == message.device else None
