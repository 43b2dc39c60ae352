-- Central's sessions at each broker (central/ingest/session.py), as SQLite's migration 0004.
CREATE TABLE IF NOT EXISTS broker_sessions (
    broker text NOT NULL,
    client_id text NOT NULL,
    established_at double precision NOT NULL,
    stored_at double precision,
    lost bigint NOT NULL DEFAULT 0,
    lost_at double precision,
    PRIMARY KEY (broker, client_id)
);
