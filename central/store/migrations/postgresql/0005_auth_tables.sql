-- Log-in sessions and failed log-ins (central/auth/sessions.py, users.py), as SQLite's migration 0003.
CREATE TABLE IF NOT EXISTS web_sessions (
    sid_hash text PRIMARY KEY, username text NOT NULL, created_at text NOT NULL, expires_at text NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_web_sessions_username ON web_sessions (username);
CREATE TABLE IF NOT EXISTS login_failures (username text NOT NULL, source text NOT NULL, at text NOT NULL);
CREATE INDEX IF NOT EXISTS idx_login_failures_user ON login_failures (username, at);
