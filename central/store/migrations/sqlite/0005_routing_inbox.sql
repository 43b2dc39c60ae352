-- What ingest workers stored for routing when routing runs in another process (central/inbox.py): written in
-- ingest's batch transaction, read and deleted by the routing leader once applied.
CREATE TABLE IF NOT EXISTS routing_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at TEXT NOT NULL
);
