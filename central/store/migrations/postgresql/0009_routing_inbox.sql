-- What ingest workers stored for routing when routing runs in another process (central/inbox.py), as
-- SQLite's migration 0005. Ids are not in commit order across workers: the leader deletes what it applied
-- rather than keeping a cursor, so a row committed late with a lower id is still read.
CREATE TABLE IF NOT EXISTS routing_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site text NOT NULL,
    topic text NOT NULL,
    payload bytea NOT NULL,
    received_at text NOT NULL
);
