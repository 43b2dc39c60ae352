"""Verifying a badge's whole evidence chain where people can use it: the API behind the unit page, and
``kuzet central verify-evidence``. A real badge records real footage into chained segments over a real
Mosquitto; then someone edits a recording and removes a record, and both are named."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.ingest import REPO
from support.patrol import Centre, point, start_badge, wait_for
from support.web import token_for

from kuzet.central.auth import audit, users
from kuzet.central.web import create_app


@pytest.fixture
def recorded(tmp_path, mosquitto, footage):
    centre = Centre(tmp_path, mosquitto.url)
    agent = start_badge(
        tmp_path,
        mosquitto.url,
        "badge-7",
        point(0),
        centre,
        camera={"source": str(footage / "pets09-s2l1" / "vtest.avi")},
        evidence={"enabled": True, "mode": "always", "segment_s": 1.0, "fps": 4, "width": 320},
    )
    try:
        verified = "select count(*) from clips where purpose = 'evidence' and state = 'verified'"
        wait_for(lambda: centre.db().execute(verified).fetchone()[0] >= 4, timeout_s=40, what="4 segments")
    finally:
        agent.stop()
    for role in ("operator", "technician"):
        users.create_user(centre.db(), role, "correct horse battery 7", role, actor="test")
    yield centre
    centre.stop()


def cli(centre, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kuzet.shared.cli",
            "central",
            "--data-dir",
            str(centre.central.data_dir),
            *args,
        ],
        cwd=REPO,
        env={
            **os.environ,
            "LANG": "en_US.UTF-8",
        },  # an English-speaking administrator (the site speaks Russian)
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_chain_status_through_the_api_and_the_command(recorded):
    centre = recorded
    db = centre.db()
    client = create_app(centre.central).test_client()
    headers = {"Authorization": f"Bearer {token_for(centre.central, 'technician')}"}
    url = "/api/v1/devices/badge-7/evidence"

    report = client.get(url, headers=headers).get_json()
    # Everything that arrived verifies; only the newest recordings may still have been on their way.
    assert report["status"] in ("verified", "incomplete"), report
    assert report["segments"] >= 4 and report["first_index"] == 0 and report["broken_at"] is None
    assert all(p["kind"] == "missing" and p["index"] >= 4 for p in report["problems"])
    assert "badge-7: цепочка" in report["summary"]  # what the device page shows, in the site's Russian

    # A recording in central's store is edited...
    [sha] = db.execute("select sha256 from evidence_segments where device = 'badge-7' and idx = 1").fetchone()
    stored = centre.central.media_dir / sha[:2] / sha
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    report = client.get(url, headers=headers).get_json()
    assert report["status"] == "broken" and report["broken_at"] == 1
    assert "НАРУШЕНА на сегменте 1" in report["summary"]
    [edited] = [p for p in report["problems"] if p["index"] == 1]
    assert (
        edited["code"] == "recording_edited"
        and edited["what"] == "its recording was edited (SHA-256 differs)"
    )
    assert edited["said"] == "его запись изменена (SHA-256 не совпадает)"  # what the device page shows

    run = cli(centre, "verify-evidence", "badge-7")
    assert run.returncode == 1, run.stderr
    assert "chain BROKEN at segment 1" in run.stdout and "edited (SHA-256 differs)" in run.stdout

    # ...put back, and a segment's record removed to hide it: a gap.
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    db.execute("delete from evidence_segments where device = 'badge-7' and idx = 2")
    db.conn.commit()
    report = client.get(url, headers=headers).get_json()
    assert report["status"] == "gap" and report["gap_at"] == 3
    [gap] = [p for p in report["problems"] if p["index"] == 3]
    assert gap["said"] == "номер 3 идёт после 1: сегмент пропущен или не по порядку"
    run = cli(centre, "verify-evidence", "badge-7", "--json")
    assert run.returncode == 1 and json.loads(run.stdout)["gap_at"] == 3

    # Each check is on the record: who checked, and what they found.
    checks = [(e["actor"], e["detail"]["status"]) for e in audit.entries(db, action="evidence.verify")]
    assert [status for _, status in reversed(checks)][1:] == ["broken", "broken", "gap", "gap"]
    assert {actor for actor, _ in checks} >= {"technician"} and any(a.startswith("cli:") for a, _ in checks)

    assert client.get("/api/v1/devices/badge-99/evidence", headers=headers).status_code == 404
    empty = cli(centre, "verify-evidence", "cam-404")
    assert empty.returncode == 1 and "no evidence segments received" in empty.stdout
