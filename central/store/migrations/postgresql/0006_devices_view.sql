-- A camera's view for the map (heading, field of view, useful distance), added to SQLite's schema.py after
-- PostgreSQL's baseline was taken.
ALTER TABLE devices ADD COLUMN IF NOT EXISTS heading_deg double precision;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS fov_deg double precision;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS view_m double precision;
