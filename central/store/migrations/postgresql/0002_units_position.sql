-- Nearest units by a KNN index where PostGIS is installed on the server: a geography point kept by the
-- database itself from lat/lon, and a GiST index that `ORDER BY position <-> point` walks nearest first.
-- Without PostGIS nothing changes and routing orders by plain SQL distance (central/store/postgres.py says
-- which on the health page).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis') THEN
        CREATE EXTENSION IF NOT EXISTS postgis;
        EXECUTE 'ALTER TABLE units ADD COLUMN position geography(Point, 4326) GENERATED ALWAYS AS ('
            'CASE WHEN lat IS NULL OR lon IS NULL THEN NULL '
            'ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography END) STORED';
        EXECUTE 'CREATE INDEX idx_units_position ON units USING gist (position)';
    END IF;
END
$$;
