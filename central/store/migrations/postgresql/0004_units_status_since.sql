-- The unit board's time in status (SQLite's schema.py adds the column to older files itself).
ALTER TABLE units ADD COLUMN IF NOT EXISTS status_since text;
