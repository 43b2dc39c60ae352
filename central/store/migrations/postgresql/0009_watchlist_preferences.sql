-- The watchlist (central/watchlist/schema.py: SQLite makes these on first use) and the operators' page
-- preferences (central/auth/preferences.py), so that the page and the watchlist run on PostgreSQL too.
-- BLOB is bytea; REAL is double precision (SQLite's REAL is 8 bytes).
CREATE TABLE IF NOT EXISTS watchlist_entries (
    id text PRIMARY KEY,
    category text NOT NULL CHECK (category IN ('missing', 'wanted')),
    name text NOT NULL,
    case_number text NOT NULL,
    authority text NOT NULL,
    reason text NOT NULL,
    expires_at text NOT NULL,
    created_at text NOT NULL,
    created_by text NOT NULL,
    updated_at text NOT NULL,
    updated_by text NOT NULL,
    removed_at text,
    removed_by text
);
CREATE TABLE IF NOT EXISTS watchlist_photos (
    id text PRIMARY KEY,
    entry_id text NOT NULL REFERENCES watchlist_entries (id),
    jpeg bytea NOT NULL,
    sha256 text NOT NULL,
    embedding bytea NOT NULL,
    face_box text NOT NULL,
    sharpness double precision NOT NULL,
    frontal double precision NOT NULL,
    added_at text NOT NULL,
    added_by text NOT NULL
);
CREATE INDEX IF NOT EXISTS watchlist_photos_entry ON watchlist_photos (entry_id);
CREATE TABLE IF NOT EXISTS watchlist_reviews (
    event_id text PRIMARY KEY,
    entry_id text NOT NULL,
    device text NOT NULL,
    decision text NOT NULL CHECK (decision IN ('confirmed', 'rejected')),
    note text NOT NULL,
    decided_by text NOT NULL,
    decided_at text NOT NULL,
    dispatch text
);
CREATE TABLE IF NOT EXISTS watchlist_pushes (
    device_id text PRIMARY KEY,
    site text NOT NULL,
    fingerprint text NOT NULL,
    version text,
    expires_at text,
    pushed_at text NOT NULL
);
CREATE TABLE IF NOT EXISTS user_preferences (
    username text PRIMARY KEY,
    language text,
    sound integer NOT NULL DEFAULT 1,
    notifications integer NOT NULL DEFAULT 1
);
