-- A split central's tables (central/roles.py). What ingest workers stored for routing when routing runs in
-- another process (central/inbox.py): written in ingest's batch transaction, deleted by the leader once applied.
CREATE TABLE IF NOT EXISTS routing_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at TEXT NOT NULL
);

-- A web worker's dispatch requests to the routing leader (central/remote_routing.py): the web worker writes
-- one and waits for its answer; the leader takes it (taken_at), carries it out and answers.
CREATE TABLE IF NOT EXISTS routing_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    method TEXT NOT NULL,
    arguments TEXT NOT NULL,
    created_at TEXT NOT NULL,
    taken_at TEXT,
    status INTEGER,
    answer TEXT
);
