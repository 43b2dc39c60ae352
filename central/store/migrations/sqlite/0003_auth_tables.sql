-- Log-in sessions and failed log-ins, created until now by auth/sessions.py and auth/users.py on first use;
-- from here a migration on both engines (IF NOT EXISTS: older files already have them).
CREATE TABLE IF NOT EXISTS web_sessions (
    sid_hash TEXT PRIMARY KEY, username TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_web_sessions_username ON web_sessions (username);
CREATE TABLE IF NOT EXISTS login_failures (username TEXT NOT NULL, source TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_login_failures_user ON login_failures (username, at);
