"""Snapshots that reached central while its media folder could not take them (full, over quota, failing).

A camera forgets a snapshot once central has acknowledged it, so central cannot ask for it again (clips it
can: their chunks wait in the spool on the data disk, and a clip whose joined file the media folder refused
stays ``receiving`` until ``ClipAssembler.request_missing`` joins it again). Such a snapshot is therefore kept
whole in the database (table ``media_retry``, in the transaction before its acknowledgement) and written again
at every clip-check round until the media folder takes it; one that still fails never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kuzet.central import alerts
from kuzet.central.store import portable
from kuzet.central.store.media import MediaUnavailable
from kuzet.shared import messages

log = logging.getLogger(__name__)

ROUND = 200  # snapshots tried per round
# What happens to media meanwhile, for /healthz and the operators' alert.
HELD = alerts.say("held_media")


def keep(conn, topic: str, payload: bytes, received_at: str, error: str) -> None:
    """Inside the caller's transaction."""
    portable.execute(
        conn,
        "INSERT INTO media_retry (topic, payload, received_at, error, attempts) VALUES (?, ?, ?, ?, 0)",
        (topic, payload, received_at, error),
    )


def waiting(conn) -> int:
    return portable.execute(conn, "SELECT count(*) FROM media_retry").fetchone()[0]


def retry(conn, store: Callable[[messages.Snapshot], str | None]) -> tuple[set[str], str | None]:
    """Try each kept snapshot with ``store`` (which raises MediaUnavailable while the folder still refuses);
    returns the events that now show their snapshot, and the last refusal (None when none)."""
    changed: set[str] = set()
    refusal = None
    rows = portable.execute(
        conn, "SELECT id, topic, payload FROM media_retry ORDER BY id LIMIT ?", (ROUND,)
    ).fetchall()
    for row_id, topic, payload in rows:
        try:
            event_id = store(messages.decode(topic, payload))
        except MediaUnavailable as exc:
            refusal = str(exc)
            with portable.transaction(conn):
                portable.execute(
                    conn,
                    "UPDATE media_retry SET attempts = attempts + 1, error = ? WHERE id = ?",
                    (refusal, row_id),
                )
            continue
        except Exception:  # one that cannot be written for another reason stays; the others go on
            log.exception("ingest: kept snapshot %d could not be written", row_id)
            continue
        with portable.transaction(conn):
            portable.execute(conn, "DELETE FROM media_retry WHERE id = ?", (row_id,))
        if event_id is not None:
            changed.add(event_id)
    if rows and refusal is None:
        log.info("ingest: %d kept snapshots written to the media folder", len(rows))
    return changed, refusal
