-- The ``since`` of the resend request a session last made (central/ingest/session.py; ``lost_at`` is when): a
-- worker that finds its session lost where another worker has already asked from as early sends nothing more.
ALTER TABLE broker_sessions ADD COLUMN IF NOT EXISTS resent_since double precision;
