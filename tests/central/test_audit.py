"""The audit log's hash chain: entries chain, and any edit, deletion or re-ordering is caught by verify."""

from __future__ import annotations

import argparse
import sqlite3
import threading

import pytest

from kuzet.central.auth import audit


def _fill(db, n=5):
    for i in range(n):
        audit.append(db, "anna", "media.view", f"event:E{i}", {"i": i, "text": "Павлодар"})


def test_entries_chain_and_verify(central):
    db = central.db()
    assert audit.verify(db) == (True, None)
    _fill(db)
    rows = list(db.query("SELECT * FROM audit ORDER BY seq"))
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, 5))
    assert audit.verify(db) == (True, None)
    assert audit.entries(db, target="event:E3")[0]["detail"] == {"i": 3, "text": "Павлодар"}


@pytest.mark.parametrize(
    "tamper, bad_seq",
    [
        ("UPDATE audit SET actor = 'boris' WHERE seq = 3", 3),
        ("UPDATE audit SET detail = '{\"i\":99}' WHERE seq = 2", 2),
        ("DELETE FROM audit WHERE seq = 4", 4),
        ("DELETE FROM audit WHERE seq = 1", 1),
        ("UPDATE audit SET ts = '2020-01-01T00:00:00.000Z' WHERE seq = 5", 5),
    ],
)
def test_tampering_is_found(central, tamper, bad_seq, capsys):
    db = central.db()
    _fill(db)
    _drop_protection(db)  # as someone with the database file could
    db.execute(tamper)
    db.conn.commit()
    assert audit.verify(db) == (False, bad_seq)
    assert audit.verify_command(central, argparse.Namespace()) == 1
    assert f"breaks at entry {bad_seq}" in capsys.readouterr().err


def _drop_protection(db):
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")


def test_entries_cannot_be_changed_or_removed_with_plain_sql(central):
    db = central.db()
    _fill(db, 2)
    for statement in ("UPDATE audit SET actor = 'boris'", "DELETE FROM audit WHERE seq = 2"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(statement)
    assert audit.verify(db) == (True, None)


def test_rewritten_row_with_recomputed_hash_breaks_the_next_link(central):
    db = central.db()
    _fill(db)
    _drop_protection(db)
    row = next(db.query("SELECT * FROM audit WHERE seq = 2"))
    forged = audit.row_hash(
        row["prev_hash"], 2, row["ts"], "boris", row["action"], row["target"], row["detail"]
    )
    db.execute("UPDATE audit SET actor = 'boris', hash = ? WHERE seq = 2", [forged])
    db.conn.commit()
    assert audit.verify(db) == (False, 3)


def test_verify_command_on_intact_log(central, capsys):
    _fill(central.db(), 3)
    assert audit.verify_command(central, argparse.Namespace()) == 0
    assert "3 entries" in capsys.readouterr().out


def test_concurrent_writers_keep_one_chain(central):
    def writer(name):
        db = central.db()  # each thread its own connection, as in the web server
        for i in range(15):
            audit.append(db, name, "event.view", f"event:{name}{i}", {})

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db = central.db()
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 60
    assert audit.verify(db) == (True, None)
