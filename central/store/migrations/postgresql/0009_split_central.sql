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

-- A web worker's dispatch requests to the routing leader (central/remote_routing.py), as SQLite's 0005.
CREATE TABLE IF NOT EXISTS routing_requests (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site text NOT NULL,
    method text NOT NULL,
    arguments text NOT NULL,
    created_at text NOT NULL,
    taken_at text,
    status integer,
    answer text
);
