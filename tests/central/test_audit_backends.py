"""The audit log on both stores (SQLite, PostgreSQL) through the store's face: entries chain and verify, plain
SQL cannot change or remove one, an edit made past the triggers is named, concurrent writers (each its own
connection, as web workers are) keep one chain, and with the audit key an edit whose chain was recomputed
fails its MAC while a checkpoint catches entries removed from the head."""

from __future__ import annotations

import threading

import pytest

from kuzet.central.auth import audit
from kuzet.central.config import StoreSection
from kuzet.central.store.backend import open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = open_store(StoreSection(), tmp_path)  # the key file: beside the database, as today
    else:
        url = request.getfixturevalue("postgres_url")
        audit.use_key_file(url, tmp_path / "keys" / "audit.key")  # never on the database server
        opened = open_store(StoreSection(url=url), tmp_path)
    yield opened
    opened.close()


def _fill(store, n=5):
    for i in range(n):
        with store.transaction() as conn:
            audit.append(conn, "anna", "media.view", f"event:E{i}", {"i": i, "text": "Павлодар"})


def _sql(store, statement: str, params=()):
    """Someone with the database: the triggers dropped, then plain SQL."""
    placeholders = statement if store.backend == "sqlite" else statement.replace("?", "%s")
    with store.transaction() as conn:
        if store.backend == "sqlite":
            conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        else:
            conn.execute("DROP TRIGGER IF EXISTS audit_no_update ON audit")
            conn.execute("DROP TRIGGER IF EXISTS audit_no_delete ON audit")
        conn.execute(placeholders, list(params))


def _at_once(writer, count: int = 4) -> None:
    """``writer(name)`` on ``count`` threads at once (each its own connection, as web workers are)."""
    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _check(store, checkpoint=None):
    with store.transaction() as conn:
        return audit.check(conn, checkpoint)


def test_entries_chain_verify_and_are_found_by_target(store):
    _fill(store)
    with store.transaction() as conn:
        assert audit.verify(conn) == (True, None)
        found = audit.entries(conn, target="event:E3")
        assert audit.intact(conn, {1, 3, 5})
    assert [entry["detail"] for entry in found] == [{"i": 3, "text": "Павлодар"}]
    report = _check(store)
    assert report.count == 5 and report.unkeyed == 0  # every entry signed with the audit key


def test_plain_sql_cannot_change_or_remove_an_entry(store):
    _fill(store, 2)
    for statement in ("UPDATE audit SET actor = 'boris'", "DELETE FROM audit WHERE seq = 2"):
        with pytest.raises(Exception, match="append-only"), store.transaction() as conn:
            conn.execute(statement)
    assert _check(store).ok


@pytest.mark.parametrize(
    "tamper, bad_seq",
    [
        ("UPDATE audit SET actor = 'boris' WHERE seq = 3", 3),
        ("DELETE FROM audit WHERE seq = 4", 4),
    ],
)
def test_an_edit_past_the_triggers_is_named(store, tamper, bad_seq):
    _fill(store)
    _sql(store, tamper)
    report = _check(store)
    assert report.first_bad == bad_seq and not report.ok


def test_an_edit_with_the_chain_recomputed_fails_its_mac(store):
    _fill(store)
    with store.transaction() as conn:
        row = conn.execute("SELECT prev_hash, ts, action, target, detail FROM audit WHERE seq = 2").fetchone()
    forged = audit.row_hash(row[0], 2, row[1], "boris", row[2], row[3], row[4])
    _sql(store, "UPDATE audit SET actor = 'boris', hash = ? WHERE seq = 2", [forged])
    _sql(store, "UPDATE audit SET prev_hash = ? WHERE seq = 3", [forged])
    report = _check(store)
    assert report.bad_mac == 2 and report.chain_break is not None  # 3's own hash no longer matches


def test_a_checkpoint_catches_entries_removed_from_the_head(store):
    _fill(store)
    with store.transaction() as conn:
        checkpoint = audit.make_checkpoint(conn)
    _fill(store, 2)
    assert _check(store, checkpoint).ok
    _sql(store, "DELETE FROM audit WHERE seq >= ?", [checkpoint["head_seq"]])
    assert _check(store).ok  # a shorter log still chains...
    assert "gone" in _check(store, checkpoint).checkpoint  # ...but the checkpoint tells


def test_concurrent_writers_keep_one_chain(store):
    def writer(name):
        for i in range(15):
            with store.transaction() as conn:  # each thread its own connection
                audit.append(conn, name, "event.view", f"event:{name}{i}", {})

    _at_once(writer)
    report = _check(store)
    assert report.count == 60 and report.ok


def test_writers_appending_several_entries_a_transaction_keep_one_chain(store, monkeypatch):
    """Routing appends an entry or two per dispatch inside its batch's transaction, which took the log's lock
    up front: the entries inside ask for nothing more (on PostgreSQL the lock once a transaction, not once
    an entry with a savepoint around it), and writers doing so at once still keep one chain."""
    from kuzet.central.auth import audit_rows

    locks = []
    execute = audit_rows.PostgresAuditRows._execute

    def counting(self, sql, params=()):
        if "pg_advisory_xact_lock" in sql:
            locks.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(audit_rows.PostgresAuditRows, "_execute", counting)

    def writer(name):
        for i in range(5):
            with store.transaction() as conn, audit.transaction(conn):
                for j in range(3):
                    audit.append(conn, name, "dispatch.sent", f"dispatch:{name}{i}{j}", {})

    _at_once(writer)
    report = _check(store)
    assert report.count == 60 and report.ok
    if store.backend == "postgresql":
        assert len(locks) == 20  # four writers, five transactions each
