-- A dispatch log note keeps its words as a key of central.alerts.MESSAGES and its parameters (JSON), said in
-- the reader's language when shown; ``detail`` keeps the English (the API, the audit, rows from before).
ALTER TABLE dispatch_log ADD COLUMN detail_key TEXT;
ALTER TABLE dispatch_log ADD COLUMN detail_params TEXT;
