"""The watchlist's tables on SQLite, made on first use (the merger may move them into central/store/schema.py
with the rest); PostgreSQL has them from migration 0009 (central/store/migrations/postgresql/).

Entries are never deleted while their matches may still be reviewed: removing one marks it removed, drops its
photos and embeddings, and takes it off the cameras' bundle."""

from __future__ import annotations

from kuzet.central.store import portable

DDL = [
    """CREATE TABLE IF NOT EXISTS watchlist_entries (
        id TEXT PRIMARY KEY,
        category TEXT NOT NULL CHECK (category IN ('missing', 'wanted')),
        name TEXT NOT NULL,
        case_number TEXT NOT NULL,
        authority TEXT NOT NULL,
        reason TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        removed_at TEXT,
        removed_by TEXT)""",
    """CREATE TABLE IF NOT EXISTS watchlist_photos (
        id TEXT PRIMARY KEY,
        entry_id TEXT NOT NULL REFERENCES watchlist_entries(id),
        jpeg BLOB NOT NULL,
        sha256 TEXT NOT NULL,
        embedding BLOB NOT NULL,
        face_box TEXT NOT NULL,
        sharpness REAL NOT NULL,
        frontal REAL NOT NULL,
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS watchlist_photos_entry ON watchlist_photos (entry_id)",
    # A person's decision on a possible match (a watchlist_match event); no row: still a possible match.
    """CREATE TABLE IF NOT EXISTS watchlist_reviews (
        event_id TEXT PRIMARY KEY,
        entry_id TEXT NOT NULL,
        device TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('confirmed', 'rejected')),
        note TEXT NOT NULL,
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        dispatch TEXT)""",
    # What central last sent each camera (central/watchlist/push.py): the watchlist's fingerprint, or 'wiped'.
    """CREATE TABLE IF NOT EXISTS watchlist_pushes (
        device_id TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        version TEXT,
        expires_at TEXT,
        pushed_at TEXT NOT NULL)""",
]


def ensure(db) -> None:
    if not portable.is_sqlite(db):
        return  # migration 0009
    for statement in DDL:
        portable.execute(db, statement)
