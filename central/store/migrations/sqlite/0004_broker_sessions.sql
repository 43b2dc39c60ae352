-- Central's sessions at each broker (central/ingest/session.py), made until now on first use.
CREATE TABLE IF NOT EXISTS broker_sessions (
    broker TEXT NOT NULL,
    client_id TEXT NOT NULL,
    established_at REAL NOT NULL,
    stored_at REAL,
    lost INTEGER NOT NULL DEFAULT 0,
    lost_at REAL,
    PRIMARY KEY (broker, client_id)
);
