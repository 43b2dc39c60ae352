-- Nearest free units: routing asks for on-duty, online units with a position, nearest first.
CREATE INDEX IF NOT EXISTS idx_units_duty_online ON units (duty, online);
