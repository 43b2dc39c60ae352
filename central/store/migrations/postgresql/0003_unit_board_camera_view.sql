-- The unit board shows how long a unit has been in its status; the map draws a camera's field of view.
ALTER TABLE units ADD COLUMN IF NOT EXISTS status_since text;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS heading_deg double precision;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS fov_deg double precision;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS view_m double precision;
