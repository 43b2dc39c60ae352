"""Retention on PostgreSQL (and a rule both stores share): an expired month of events is dropped whole, and what its events left behind (the
snapshot's media row and file, the clip's row, the dispatch with its log) goes with them, while a held
event keeps its evidence; every removal is in the audit log, which still verifies."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from support.ingest import SITE, event, new_id

from kuzet.central.auth import audit
from kuzet.central.config import StoreSection
from kuzet.central.store import portable, retention
from kuzet.central.store.backend import open_store
from kuzet.central.store.events import Received
from kuzet.central.store.objects import LocalObjects

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 30 days' retention: cut off on 21 October


def _event_with_evidence(store, objects, at: str) -> tuple[str, str]:
    """An event received at ``at`` with a snapshot (row and file), a clip row and a dispatch with its log."""
    event_id, dispatch_id = new_id(), new_id()
    data = f"snapshot of {event_id}".encode()
    sha256 = hashlib.sha256(data).hexdigest()
    objects.put_bytes(sha256, data, "image/jpeg")
    with store.transaction() as conn:
        store.events.apply(conn, [Received(event("cam-1", event_id, 0), SITE, at)])
        portable.execute(conn, "UPDATE events SET snapshot_sha256 = ? WHERE event_id = ?", [sha256, event_id])
        portable.execute(
            conn,
            "INSERT INTO media (sha256, kind, content_type, size, path, created_at, event_id, device)"
            " VALUES (?, 'snapshot', 'image/jpeg', ?, ?, ?, ?, 'cam-1')",
            [sha256, len(data), f"{sha256[:2]}/{sha256}", at, event_id],
        )
        portable.execute(
            conn,
            "INSERT INTO clips (clip_id, device, event_id, purpose, state, created_at)"
            " VALUES (?, 'cam-1', ?, 'event', 'receiving', ?)",
            [new_id(), event_id, at],
        )
        portable.execute(
            conn,
            "INSERT INTO dispatches (dispatch_id, event_id, unit, mode, state, created_at, updated_at)"
            " VALUES (?, ?, 'badge-1', 'manual', 'resolved', ?, ?)",
            [dispatch_id, event_id, at, at],
        )
        portable.execute(
            conn,
            "INSERT INTO dispatch_log (dispatch_id, state, at) VALUES (?, 'resolved', ?)",
            [dispatch_id, at],
        )
    return event_id, sha256


def _count(store, table: str, where: str, params: list) -> int:
    with store.connection() as db:
        return portable.execute(db, f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]


def test_an_expired_month_goes_with_what_its_events_left_and_held_evidence_stays(postgres_url, tmp_path):
    audit.use_key_file(postgres_url, tmp_path / "audit.key")
    store = open_store(StoreSection(url=postgres_url, partitions_ahead_months=1), tmp_path)
    objects = LocalObjects(tmp_path / "media")
    try:
        store.ensure_partitions(datetime(2026, 9, 1, tzinfo=UTC))
        old, old_sha = _event_with_evidence(store, objects, "2026-09-10T08:00:00.000Z")
        held, held_sha = _event_with_evidence(store, objects, "2026-09-20T08:00:00.000Z")
        recent, recent_sha = _event_with_evidence(store, objects, "2026-11-02T08:00:00.000Z")
        with store.transaction() as conn:
            portable.execute(conn, "UPDATE events SET hold = 1 WHERE event_id = ?", [held])

        dropped, removed = retention.run_on_postgresql(
            store, objects, retention_days=30, max_media_gb=100, now=NOW
        )

        assert [(d.partition, d.events, d.held) for d in dropped] == [("events_2026_09", 1, 1)]
        assert (removed.media, removed.dispatches, removed.dispatch_log) == (1, 1, 1)
        for table, column in (("media", "event_id"), ("clips", "event_id"), ("dispatches", "event_id")):
            assert _count(store, table, f"{column} = ?", [old]) == 0, table
            assert _count(store, table, f"{column} = ?", [held]) == 1, table
            assert _count(store, table, f"{column} = ?", [recent]) == 1, table
        assert not objects.exists(old_sha) and objects.exists(held_sha) and objects.exists(recent_sha)
        with store.connection() as db:
            actions = {entry["action"] for entry in audit.entries(db, actor="system")}
            report = audit.check(db)
        assert {
            "retention.drop_partition",
            "retention.delete_media",
            "retention.delete_dispatches",
        } <= actions
        assert report.ok and report.unkeyed == 0
    finally:
        store.close()


def test_a_clip_still_arriving_for_a_held_event_does_not_keep_old_files_forever(tmp_path):
    """The protected files once included the NULL SHA-256 of a clip still arriving; ``NOT IN`` a list with a
    NULL is never true, so no file expired at all (SQLite and PostgreSQL alike)."""
    store = open_store(StoreSection(), tmp_path)
    objects = LocalObjects(tmp_path / "media")
    try:
        old, old_sha = _event_with_evidence(store, objects, "2026-09-10T08:00:00.000Z")
        held, held_sha = _event_with_evidence(store, objects, "2026-09-20T08:00:00.000Z")
        with store.transaction() as conn:
            conn.execute("UPDATE events SET hold = 1 WHERE event_id = ?", [held])
        with store.connection() as db:
            removed = retention.apply_retention(db, objects, retention_days=30, max_media_gb=100, now=NOW)
        assert removed.events == 1 and removed.media == 1
        assert not objects.exists(old_sha) and objects.exists(held_sha)
    finally:
        store.close()
