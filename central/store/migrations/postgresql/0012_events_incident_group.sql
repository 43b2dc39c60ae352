-- One incident group of the triage board (central.store.incidents folds a changed camera, zone and type on
-- every change): found by its camera and type, in time order, instead of through every event of the type.
CREATE INDEX IF NOT EXISTS idx_events_device_event_type_started_at ON events (device, event_type, started_at);
