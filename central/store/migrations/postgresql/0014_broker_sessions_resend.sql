-- The resend request a session last made (central/ingest/session.py): when it was decided (``resent_at``) and
-- its ``since``. A worker that finds its session lost where another worker has already asked from as early
-- since the broker started sends nothing more.
ALTER TABLE broker_sessions ADD COLUMN IF NOT EXISTS resent_at double precision;
ALTER TABLE broker_sessions ADD COLUMN IF NOT EXISTS resent_since double precision;
