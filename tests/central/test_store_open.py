"""Opening the database: central's threads and a command run beside it (`kuzet central create-token` while the
demo starts) open a fresh database at the same moment; none of them may fail."""

from __future__ import annotations

import multiprocessing
import threading

from kuzet.central.store.schema import TABLES, open_database


def _open_from_threads(path: str, count: int, errors) -> None:
    failures: list[str] = []

    def one() -> None:
        try:
            open_database(path).close()
        except Exception as exc:  # the failure is the finding: report it, don't stop the others
            failures.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors.put(failures)


def test_a_fresh_database_opened_by_two_processes_and_many_threads_at_once(tmp_path):
    context = multiprocessing.get_context("fork")  # spawn cannot import a test module
    for round_ in range(3):  # before the fix every round failed with "database is locked"
        path = str(tmp_path / f"central-{round_}.db")
        errors = context.Queue()
        processes = [context.Process(target=_open_from_threads, args=(path, 6, errors)) for _ in range(2)]
        for process in processes:
            process.start()
        failures = [failure for _ in processes for failure in errors.get(timeout=60)]
        for process in processes:
            process.join(timeout=60)
        assert failures == []
        db = open_database(path)
        assert set(TABLES) <= set(db.table_names())
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def test_the_schema_is_checked_once_per_file_and_again_when_the_file_changes(tmp_path, monkeypatch):
    """Central opens a connection per thread (a hundred and more as the first pages come): the tables are
    checked on the first open, not on every one, yet a file replaced or altered behind central's back is
    brought up to date on its next open."""
    from kuzet.central.store import schema

    checks = []
    real = schema._ensure_schema
    monkeypatch.setattr(schema, "_ensure_schema", lambda db: (checks.append(1), real(db)))
    path = tmp_path / "central.db"
    for _ in range(5):
        open_database(path).close()
    assert len(checks) == 1

    path.unlink()  # replaced: a new, empty file at the same path
    path.with_name("central.db-wal").unlink(missing_ok=True)
    path.with_name("central.db-shm").unlink(missing_ok=True)
    db = open_database(path)
    assert set(TABLES) <= set(db.table_names()) and len(checks) == 2
    db.execute("DROP INDEX idx_devices_revoked")  # altered by someone else
    db.close()
    db = open_database(path)
    assert len(checks) == 3
    assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'idx_devices_revoked'").fetchone()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
