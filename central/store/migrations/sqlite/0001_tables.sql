-- The tables themselves are created (and older databases given their new nullable columns) by
-- central/store/schema.py from TABLES; this first version records that baseline.
SELECT 1;
