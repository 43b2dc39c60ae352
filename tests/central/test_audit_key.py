"""Issue 17, item 11: the audit chain had no secret. The attack as found: with the database file alone, edit an
entry and recompute every hash after it; ``kuzet central verify-audit`` then passed."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from support.web import make_central

from kuzet.central.auth import audit

KUZET = str(Path(sys.executable).with_name("kuzet"))


def _cli(central, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KUZET, "central", "--data-dir", str(central.data_dir), *args],
        env={
            **os.environ,
            "LANG": "en_US.UTF-8",
        },  # an English-speaking administrator (the site speaks Russian)
        capture_output=True,
        text=True,
        timeout=60,
    )


def _fill(central, n: int = 6) -> None:
    for i in range(n):
        audit.append(central.db(), "anna", "media.view", f"event:E{i}", {"i": i})


def _forge(db_path: Path, seq: int, **changes) -> None:
    """What someone with only the database can do: drop the triggers, edit, recompute the chain from there."""
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for column, value in changes.items():
        conn.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", [value, seq])
    rows = conn.execute("SELECT seq, ts, actor, action, target, detail FROM audit ORDER BY seq").fetchall()
    prev = "0" * 64
    for number, ts, actor, action, target, detail in rows:
        body = json.dumps(
            {"seq": number, "ts": ts, "actor": actor, "action": action, "target": target, "detail": detail},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        digest = hashlib.sha256((prev + body).encode()).hexdigest()
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", [prev, digest, number])
        prev = digest
    conn.commit()
    conn.close()


def test_an_edit_with_the_whole_chain_recomputed_is_caught_and_named(tmp_path):
    central = make_central(tmp_path)
    _fill(central)
    assert _cli(central, "verify-audit").returncode == 0
    target = central.db().execute("SELECT seq FROM audit WHERE target = 'event:E2'").fetchone()[0]

    _forge(central.db_path, target, actor="boris")
    done = _cli(central, "verify-audit")
    assert done.returncode == 1
    assert f"entry {target} fails its MAC" in done.stderr, done.stderr


def test_removing_the_macs_as_well_does_not_help(tmp_path):
    central = make_central(tmp_path)
    _fill(central)
    _forge(central.db_path, 3, detail='{"i":99}')
    conn = sqlite3.connect(central.db_path)
    conn.execute("UPDATE audit SET mac = NULL")
    conn.commit()
    conn.close()
    done = _cli(central, "verify-audit")
    assert done.returncode == 1 and "fails its MAC" in done.stderr


def test_the_key_is_a_private_file_apart_from_the_database(tmp_path):
    central = make_central(tmp_path)
    key_file = central.data_dir / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = json.loads(key_file.read_text())["key"]
    assert secret.encode() not in central.db_path.read_bytes()


def test_a_checkpoint_catches_entries_removed_or_rewritten_before_it(tmp_path):
    central = make_central(tmp_path)
    _fill(central)
    checkpoint = tmp_path / "offsite" / "checkpoint.json"
    made = _cli(central, "audit-checkpoint", "--out", str(checkpoint))
    assert made.returncode == 0, made.stderr
    _fill(central, 2)  # the log goes on after the checkpoint
    assert _cli(central, "verify-audit", "--checkpoint", str(checkpoint)).returncode == 0

    head = json.loads(checkpoint.read_text())["head_seq"]
    conn = sqlite3.connect(central.db_path)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    conn.execute(
        "DELETE FROM audit WHERE seq >= ?", [head - 1]
    )  # the newest entries, back into the checkpoint
    conn.commit()
    conn.close()
    assert _cli(central, "verify-audit").returncode == 0  # a shorter log is still a valid chain...
    done = _cli(central, "verify-audit", "--checkpoint", str(checkpoint))
    assert (
        done.returncode == 1 and f"entry {head}" in done.stderr and "gone" in done.stderr
    )  # ...but not this

    forged = json.loads(checkpoint.read_text())
    forged["head_seq"] -= 2
    checkpoint.write_text(json.dumps(forged))
    done = _cli(central, "verify-audit", "--checkpoint", str(checkpoint))
    assert done.returncode == 1 and "signature" in done.stderr


def test_entries_from_before_the_key_are_reported_not_failed(tmp_path):
    central = make_central(tmp_path)
    _fill(central, 3)
    # A database from the version before the key: no MAC column, no key file.
    central.close()
    audit._keys.clear()
    (central.data_dir / "audit.key").unlink()
    conn = sqlite3.connect(central.db_path)
    conn.execute("ALTER TABLE audit DROP COLUMN mac")
    old = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    conn.close()

    done = _cli(central, "verify-audit")
    assert done.returncode == 0, done.stderr
    assert f"{old} entries were written before the audit key existed" in done.stdout

    _fill(central, 2)  # the new version writes on, with a key from now on
    done = _cli(central, "verify-audit")
    assert done.returncode == 0, done.stderr
    assert f"{old} entries were written before the audit key existed" in done.stdout
    assert "2 MACs verified" in done.stdout
    _forge(central.db_path, old + 1, actor="boris")
    done = _cli(central, "verify-audit")
    assert done.returncode == 1 and f"entry {old + 1} fails its MAC" in done.stderr
