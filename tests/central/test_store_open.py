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
