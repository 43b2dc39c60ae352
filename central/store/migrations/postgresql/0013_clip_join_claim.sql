-- A clip being joined is claimed by one ingest worker (central/ingest/clip_claims.py): the claim's own id, so that
-- only its holder ends it, and when it was taken (a claim gone stale was left by a worker killed mid-join).
ALTER TABLE clips ADD COLUMN IF NOT EXISTS claim_id text;
ALTER TABLE clips ADD COLUMN IF NOT EXISTS claimed_at text;
