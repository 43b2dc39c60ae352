"""Retention: events and media older than ``[storage] retention_days`` are deleted, and when the media
exceeds ``[storage] max_media_gb`` the oldest media goes first. An event under evidence hold (``hold = 1``)
is exempt, and so is every file it refers to: its snapshot, its clip, any media recorded against it, and the
body-camera recordings of the officers dispatched to it.

An event goes with everything kept about it: its timeline, its clips, its dispatches with their state log, and
the evidence segments recorded on those dispatches. Body-camera recordings are uploaded without an event;
each run first links every recording made on a dispatch to that dispatch's event, so that it is held, kept
and expired with the event.

Alerts and device commands go by age too: an alert once it was raised and last changed (acknowledged) before
the cutoff, so an open alert is never removed while it is younger than the retention window; a command once it
was sent and answered before the cutoff. An alert or command about a held event (directly, or through a
dispatch to it, e.g. the ``cancel_dispatch`` a badge was sent) stays with the event.

The same rules run on either store (``portable``); on PostgreSQL ``PostgresStore.drop_expired_partitions``
first drops the expired months of events wholesale (``run_on_postgresql``), and what those events left
behind (media, dispatches, evidence) then expires here as belonging to no remaining event.

Work is done in small transactions so that ingest, which shares the database, is never held up for long.
Files are unlinked only after the rows that name them are gone: a crash in between leaves an orphan file
(harmless, found again by nobody), never a row that points at nothing. Every deletion is written to the audit
log (actor "system") in the same transaction as the deletion itself; for evidence segments that includes each
one's place in its badge's hash chain, so that a chain with links removed by retention can still be accounted
for.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kuzet.central.auth import audit
from kuzet.central.ingest.clips import spooled_bytes
from kuzet.central.store import portable
from kuzet.central.store.objects import ObjectStore
from kuzet.shared import timeutil

log = logging.getLogger(__name__)

# Rows per transaction: small enough that the ingest writer waits milliseconds, not seconds.
CHUNK = 200
GIB = 1024**3

# Each badge's newest evidence segment stays (without its dispatch, once that has gone): the next segment the
# badge sends is checked against it, and a missing anchor would read as a broken chain.
_NEWEST = (
    "idx = (SELECT max(idx) FROM evidence_segments newest WHERE newest.device = evidence_segments.device)"
)
# Every file that stays whatever its age or the size limit: each one a held event refers to, however it refers
# to it, and the recording of each badge's newest segment (which stays, so its recording can still be checked).
# Never a NULL in it (a clip still arriving has no SHA-256 yet): ``x NOT IN`` a list holding NULL is never
# true, so one such clip of a held event would keep every file from expiring.
_PROTECTED = f"""SELECT sha256 FROM (
    SELECT m.sha256 FROM media m JOIN events e ON m.event_id = e.event_id WHERE e.hold = 1
    UNION SELECT e.snapshot_sha256 FROM events e WHERE e.hold = 1 AND e.snapshot_sha256 IS NOT NULL
    UNION SELECT c.sha256 FROM clips c JOIN events e ON c.event_id = e.event_id WHERE e.hold = 1
    UNION SELECT c.sha256 FROM clips c JOIN events e ON e.clip_id = c.clip_id WHERE e.hold = 1
    UNION SELECT s.sha256 FROM evidence_segments s JOIN dispatches d ON d.dispatch_id = s.dispatch_id
        JOIN events e ON e.event_id = d.event_id WHERE e.hold = 1
    UNION SELECT sha256 FROM evidence_segments WHERE {_NEWEST}
) protected WHERE sha256 IS NOT NULL
"""
# The dispatches that still have their event (the others are expired as loose dispatches).
_DISPATCHES_WITH_EVENT = "SELECT dispatch_id FROM dispatches WHERE event_id IN (SELECT event_id FROM events)"
# What belongs to a held event: the event itself, and every dispatch sent to it.
_HELD_EVENTS = "SELECT event_id FROM events WHERE hold = 1"
_HELD_DISPATCHES = f"SELECT dispatch_id FROM dispatches WHERE event_id IN ({_HELD_EVENTS})"


@dataclass
class RetentionReport:
    events: int = 0
    event_updates: int = 0
    dispatches: int = 0
    dispatch_log: int = 0
    evidence_segments: int = 0
    media: int = 0
    media_bytes: int = 0
    alerts: int = 0
    commands: int = 0
    dead_letters: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __bool__(self) -> bool:
        return any(self.as_dict().values())


def apply_retention(
    db,
    media_root: Path | ObjectStore,
    *,
    retention_days: float,
    max_media_gb: float,
    now: datetime | None = None,
) -> RetentionReport:
    """Delete what the limits no longer allow; returns what was removed. ``media_root``: the media folder, or
    the object store the media is kept in (``central.store.objects``)."""
    now = now or timeutil.utc_now()
    cutoff = timeutil.to_wire(now - timedelta(days=retention_days))
    report = RetentionReport()
    media_root = media_root if hasattr(media_root, "delete") else Path(media_root)
    link_evidence(db)
    _expire_events(db, media_root, cutoff, report)
    _expire_loose_dispatches(db, cutoff, report)
    _expire_loose_evidence(db, cutoff, report)
    _expire_loose_media(db, media_root, cutoff, report)
    # The clips being received count in the limit too: the media shrinks to leave them their room.
    _shrink_media(db, media_root, int(max_media_gb * GIB) - spooled_bytes(db), report)
    _expire_alerts(db, cutoff, report)
    _expire_commands(db, cutoff, report)
    with audit.transaction(db):
        report.dead_letters += portable.execute(
            db, "DELETE FROM dead_letters WHERE received_at < ?", [cutoff]
        ).rowcount
    if report:
        log.info("retention: removed %s", report.as_dict())
    return report


def run_on_postgresql(
    store, media_root: Path | ObjectStore, *, retention_days: float, max_media_gb: float, now=None
) -> tuple[list, RetentionReport]:
    """PostgreSQL's retention: the expired months of events dropped whole (``drop_expired_partitions``), then
    the same rules as SQLite's for the rest. Returns the months dropped and what the rules removed."""
    now = now or timeutil.utc_now()
    dropped = store.drop_expired_partitions(timeutil.to_wire(now - timedelta(days=retention_days)))
    with store.connection() as db:
        report = apply_retention(
            db, media_root, retention_days=retention_days, max_media_gb=max_media_gb, now=now
        )
    return dropped, report


def link_evidence(db) -> int:
    """Give every body-camera recording made on a dispatch the event of that dispatch (recordings arrive
    without one). Returns how many were linked."""
    with audit.transaction(db):
        return portable.execute(
            db,
            "UPDATE media SET event_id = ("
            "  SELECT d.event_id FROM evidence_segments s JOIN dispatches d ON d.dispatch_id = s.dispatch_id"
            "  WHERE s.sha256 = media.sha256 AND d.event_id IS NOT NULL ORDER BY s.received_at LIMIT 1)"
            " WHERE event_id IS NULL AND kind = 'evidence' AND sha256 IN ("
            "  SELECT s.sha256 FROM evidence_segments s JOIN dispatches d ON d.dispatch_id = s.dispatch_id"
            "  WHERE d.event_id IS NOT NULL)",
        ).rowcount


def _expire_events(db, media_root: Path, cutoff: str, report: RetentionReport) -> None:
    """Events not held whose last word from the edge is older than the cutoff, with their timeline, media,
    dispatches and the evidence recorded on them."""
    while True:
        files: list[str] = []
        with audit.transaction(db):
            event_ids = [
                row[0]
                for row in portable.execute(
                    db,
                    # received_at <= updated_at: the first test narrows the search by its index.
                    "SELECT event_id FROM events WHERE received_at < ? AND hold = 0"
                    " AND coalesce(updated_at, received_at) < ? ORDER BY received_at LIMIT ?",
                    [cutoff, cutoff, CHUNK],
                )
            ]
            if not event_ids:
                return
            marks = ", ".join("?" * len(event_ids))
            dispatches = f"SELECT dispatch_id FROM dispatches WHERE event_id IN ({marks})"
            media = portable.execute(
                db,
                f"SELECT sha256, path, size FROM media WHERE sha256 IN ("
                f" SELECT sha256 FROM media WHERE event_id IN ({marks})"
                f" UNION SELECT snapshot_sha256 FROM events WHERE event_id IN ({marks})"
                f" UNION SELECT sha256 FROM clips WHERE event_id IN ({marks})"
                f" UNION SELECT sha256 FROM evidence_segments WHERE dispatch_id IN ({dispatches})"
                f") AND sha256 NOT IN ({_PROTECTED})"
                # a file shared with an event that stays (same bytes, content addressing) stays too
                f" AND sha256 NOT IN (SELECT snapshot_sha256 FROM events WHERE snapshot_sha256 IS NOT NULL"
                f"   AND event_id NOT IN ({marks}))",
                event_ids * 5,
            ).fetchall()
            report.event_updates += portable.execute(
                db, f"DELETE FROM event_updates WHERE event_id IN ({marks})", event_ids
            ).rowcount
            portable.execute(db, f"DELETE FROM clips WHERE event_id IN ({marks})", event_ids)
            expired_dispatches = _delete_dispatches(db, dispatches, event_ids, report)
            files += _delete_media_rows(db, media, report)
            report.events += portable.execute(
                db, f"DELETE FROM events WHERE event_id IN ({marks})", event_ids
            ).rowcount
            _audit(
                db,
                "retention.delete_events",
                "events",
                {"reason": "age", "event_ids": event_ids, **expired_dispatches},
            )
        _unlink(media_root, files)


def _expire_loose_dispatches(db, cutoff: str, report: RetentionReport) -> None:
    """Dispatches older than the cutoff with no event (an intercept sent to a place), or whose event is gone."""
    while True:
        with audit.transaction(db):
            ids = [
                row[0]
                for row in portable.execute(
                    db,
                    f"SELECT dispatch_id FROM dispatches WHERE coalesce(updated_at, created_at) < ?"
                    f" AND dispatch_id NOT IN ({_DISPATCHES_WITH_EVENT}) LIMIT ?",
                    [cutoff, CHUNK],
                )
            ]
            if not ids:
                return
            marks = ", ".join("?" * len(ids))
            dispatches = f"SELECT dispatch_id FROM dispatches WHERE dispatch_id IN ({marks})"
            expired = _delete_dispatches(db, dispatches, ids, report)
            _audit(db, "retention.delete_dispatches", "dispatches", {"reason": "age", **expired})


def _delete_dispatches(db, dispatches_sql: str, params: list, report: RetentionReport) -> dict:
    """Delete the dispatches ``dispatches_sql`` selects, with their state log and the evidence segments
    recorded on them (their recordings are the caller's business). Returns what to write to the audit log."""
    recorded_on = f"dispatch_id IN ({dispatches_sql})"
    segments = _segments_where(db, f"{recorded_on} AND NOT {_NEWEST}", params)
    report.evidence_segments += _delete_segments(db, segments)
    portable.execute(
        db, f"UPDATE evidence_segments SET dispatch_id = NULL WHERE {recorded_on} AND {_NEWEST}", params
    )
    report.dispatch_log += portable.execute(
        db, f"DELETE FROM dispatch_log WHERE dispatch_id IN ({dispatches_sql})", params
    ).rowcount
    ids = [row[0] for row in portable.execute(db, dispatches_sql, params)]
    report.dispatches += portable.execute(
        db, f"DELETE FROM dispatches WHERE dispatch_id IN ({dispatches_sql})", params
    ).rowcount
    return {"dispatch_ids": ids, "evidence_segments": segments}


def _expire_loose_evidence(db, cutoff: str, report: RetentionReport) -> None:
    """Evidence segments older than the cutoff that belong to no remaining dispatch (recorded off duty, or
    their dispatch has gone). Each badge's newest segment stays: it is what the next one is chained to."""
    while True:
        with audit.transaction(db):
            segments = _segments_where(
                db,
                f"received_at < ? AND (dispatch_id IS NULL OR dispatch_id NOT IN (SELECT dispatch_id FROM dispatches))"
                f" AND sha256 NOT IN ({_PROTECTED})"
                f" AND NOT {_NEWEST} ORDER BY received_at LIMIT {CHUNK}",
                [cutoff],
            )
            if not segments:
                return
            report.evidence_segments += _delete_segments(db, segments)
            _audit(
                db,
                "retention.delete_evidence",
                "evidence_segments",
                {"reason": "age", "evidence_segments": segments},
            )


# What the audit log keeps of each segment removed: enough to check its links in the chain without it
# (central.routing.evidence accepts a gap in a badge's chain exactly when these records fill it).
_SEGMENT_RECORD = (
    "segment_id",
    "device",
    "index",
    "prev_chain_sha256",
    "chain_sha256",
    "sha256",
    "started_at",
    "ended_at",
)


def _segments_where(db, where: str, params: list) -> list[dict]:
    columns = ", ".join("idx" if name == "index" else name for name in _SEGMENT_RECORD)
    rows = portable.execute(db, f"SELECT {columns} FROM evidence_segments WHERE {where}", params).fetchall()
    return [dict(zip(_SEGMENT_RECORD, row, strict=True)) for row in rows]


def _delete_segments(db, segments: list[dict]) -> int:
    """Delete evidence segments and the reassembly rows of their recordings (clip_id = segment_id)."""
    ids = [segment["segment_id"] for segment in segments]
    if not ids:
        return 0
    marks = ", ".join("?" * len(ids))
    portable.execute(db, f"DELETE FROM clips WHERE clip_id IN ({marks})", ids)
    return portable.execute(db, f"DELETE FROM evidence_segments WHERE segment_id IN ({marks})", ids).rowcount


def _expire_loose_media(db, media_root: Path, cutoff: str, report: RetentionReport) -> None:
    """Old media that belongs to no remaining event (badge recordings off duty, files of events already gone)."""
    while True:
        with audit.transaction(db):
            media = portable.execute(
                db,
                "SELECT sha256, path, size FROM media WHERE created_at < ?"
                " AND (event_id IS NULL OR event_id NOT IN (SELECT event_id FROM events))"
                " AND sha256 NOT IN (SELECT snapshot_sha256 FROM events WHERE snapshot_sha256 IS NOT NULL)"
                " AND sha256 NOT IN (SELECT c.sha256 FROM clips c JOIN events e ON c.event_id = e.event_id"
                "   WHERE c.sha256 IS NOT NULL)"
                f" AND sha256 NOT IN ({_PROTECTED}) ORDER BY created_at LIMIT ?",
                [cutoff, CHUNK],
            ).fetchall()
            if not media:
                return
            files = _delete_media_rows(db, media, report)
            _audit(db, "retention.delete_media", "media", {"reason": "age", "sha256": [m[0] for m in media]})
        _unlink(media_root, files)


def _shrink_media(db, media_root: Path, limit_bytes: int, report: RetentionReport) -> None:
    """Oldest media first until the total is under the limit; held media is never touched."""
    while True:
        total = portable.execute(db, "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM media").fetchone()[0]
        if total <= limit_bytes:
            return
        with audit.transaction(db):
            candidates = portable.execute(
                db,
                f"SELECT sha256, path, size FROM media WHERE sha256 NOT IN ({_PROTECTED})"
                " ORDER BY created_at LIMIT ?",
                [CHUNK],
            ).fetchall()
            media, excess = [], total - limit_bytes
            for row in candidates:
                if excess <= 0:
                    break
                media.append(row)
                excess -= row[2] or 0
            if not media:
                log.warning(
                    "retention: media is %.2f GiB, over the %.2f GiB limit, and all of it is on hold",
                    total / GIB,
                    limit_bytes / GIB,
                )
                return
            files = _delete_media_rows(db, media, report)
            _audit(db, "retention.delete_media", "media", {"reason": "size", "sha256": [m[0] for m in media]})
        _unlink(media_root, files)


def _expire_alerts(db, cutoff: str, report: RetentionReport) -> None:
    """Alerts raised and last acknowledged before the cutoff (``at <= acknowledged_at``: the first test narrows
    the search by its index), unless they are about a held event or a dispatch to one."""
    report.alerts += _expire_rows(
        db,
        "alerts",
        "id",
        "at < ? AND coalesce(acknowledged_at, at) < ?"
        f" AND (event_id IS NULL OR event_id NOT IN ({_HELD_EVENTS}))"
        f" AND (dispatch_id IS NULL OR dispatch_id NOT IN ({_HELD_DISPATCHES}))",
        [cutoff, cutoff],
        "retention.delete_alerts",
    )


def _expire_commands(db, cutoff: str, report: RetentionReport) -> None:
    """Commands sent and answered (or never answered) before the cutoff, unless they name a held event or a
    dispatch to one (a ``cancel_dispatch``: its ``args`` carry the dispatch)."""
    report.commands += _expire_rows(
        db,
        "commands",
        "command_id",
        "created_at < ? AND coalesce(result_at, created_at) < ?"
        f" AND coalesce({_json_text(db, 'args', 'event_id')}, '') NOT IN ({_HELD_EVENTS})"
        f" AND coalesce({_json_text(db, 'args', 'dispatch_id')}, '') NOT IN ({_HELD_DISPATCHES})",
        [cutoff, cutoff],
        "retention.delete_commands",
    )


def _json_text(db, column: str, key: str) -> str:
    """A text member of a JSON text column, as each engine spells it."""
    if portable.is_sqlite(db):
        return f"json_extract({column}, '$.{key}')"
    return f"({column}::jsonb ->> '{key}')"


def _expire_rows(db, table: str, key: str, where: str, params: list, action: str) -> int:
    """Delete the rows of ``table`` that ``where`` selects, CHUNK at a time, each chunk audited with the keys
    it removed; returns how many went."""
    removed = 0
    while True:
        with audit.transaction(db):
            keys = [
                row[0]
                for row in portable.execute(
                    db, f"SELECT {key} FROM {table} WHERE {where} LIMIT {CHUNK}", params
                )
            ]
            if not keys:
                return removed
            marks = ", ".join("?" * len(keys))
            removed += portable.execute(db, f"DELETE FROM {table} WHERE {key} IN ({marks})", keys).rowcount
            _audit(db, action, table, {"reason": "age", key: keys})


def _delete_media_rows(db, media: list[tuple], report: RetentionReport) -> list[str]:
    """Remove the rows (and the references to them); returns the files to unlink after the commit."""
    if not media:
        return []
    shas = [row[0] for row in media]
    marks = ", ".join("?" * len(shas))
    portable.execute(db, f"UPDATE events SET snapshot_sha256 = NULL WHERE snapshot_sha256 IN ({marks})", shas)
    portable.execute(db, f"UPDATE clips SET state = 'expired' WHERE sha256 IN ({marks})", shas)
    portable.execute(db, f"DELETE FROM media WHERE sha256 IN ({marks})", shas)
    report.media += len(media)
    report.media_bytes += sum(row[2] or 0 for row in media)
    return [row[1] for row in media]


def _unlink(media_root: Path | ObjectStore, files: list[str]) -> None:
    for relative in files:
        try:
            if isinstance(media_root, Path):
                (media_root / relative).unlink(missing_ok=True)
            else:  # an object store: the file's name is its SHA-256, its key
                media_root.delete(Path(relative).name)
        except Exception as exc:  # an orphan left behind is harmless; the rows are already gone
            log.warning("retention: could not remove %s: %s", relative, exc)


def _audit(db, action: str, target: str, detail: dict) -> None:
    audit.append(db, "system", action, target, detail)
