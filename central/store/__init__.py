"""Central's storage: one SQLite database in WAL mode (sqlite-utils) and media files addressed by SHA-256."""
