"""The newest end of a badge's evidence chain (central.routing.evidence): central remembers the highest segment
each badge announced (``evidence_heads``), so deleting the newest segment's record and recording is a gap in
``kuzet central verify-evidence``, not a shorter chain that verifies; and a badge whose heartbeat says it
sealed more than central holds shows those as not arrived yet."""

from __future__ import annotations

import argparse
import json

from support.chain import next_segment
from support.ingest import make_central

from kuzet.central import cli
from kuzet.central.routing.evidence import EvidenceLedger
from kuzet.shared import messages

DEVICE = "badge-7"


def _record_chain(central, count: int) -> list[messages.EvidenceSegment]:
    """``count`` chained segments recorded as routing records them, each with its verified recording."""
    db, ledger, segments, segment = central.db(), EvidenceLedger(), [], None
    for index in range(count):
        data = f"recording {index}".encode() * 100
        segment = next_segment(DEVICE, segment, data, seconds=60)
        sha = segment.sha256
        with db.conn:
            assert ledger.record(db, segment) is None
            db["clips"].insert(
                {"clip_id": segment.segment_id, "device": DEVICE, "sha256": sha, "state": "verified"}
            )
        path = central.media_dir / sha[:2] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        segments.append(segment)
    return segments


def _verify(central, capsys) -> tuple[int, dict]:
    args = argparse.Namespace(
        config=None, data_dir=str(central.data_dir), action="verify-evidence", device=DEVICE, json=True
    )
    code = cli.run(args)
    return code, json.loads(capsys.readouterr().out)


def test_deleting_the_newest_segment_is_a_gap(tmp_path, capsys):
    central = make_central(tmp_path)
    segments = _record_chain(central, 3)
    code, report = _verify(central, capsys)
    assert code == 0 and report["status"] == "verified" and report["last_index"] == 2

    # Someone removes the newest segment: its record, its recording and the clip that brought it.
    newest = segments[-1]
    db = central.db()
    with db.conn:
        db.execute("delete from evidence_segments where segment_id = ?", [newest.segment_id])
        db.execute("delete from clips where clip_id = ?", [newest.segment_id])
    (central.media_dir / newest.sha256[:2] / newest.sha256).unlink()

    code, report = _verify(central, capsys)
    assert code == 1
    assert report["status"] == "gap" and report["gap_at"] == 2 and report["last_index"] == 1
    [problem] = report["problems"]
    assert problem["kind"] == "gap" and problem["segment_id"] == newest.segment_id
    assert "end of the chain was deleted" in problem["what"]
    central.close()


def test_segments_the_heartbeat_announced_but_central_lacks_are_reported(tmp_path, capsys):
    central = make_central(tmp_path)
    _record_chain(central, 2)
    heartbeat = messages.Status(
        device=DEVICE, kind="badge", software_version="1", uptime_s=9, counters={"evidence_sealed": 4}
    )
    central.db()["devices"].insert({"device_id": DEVICE, "status": messages.encode(heartbeat).decode()})
    code, report = _verify(central, capsys)
    assert code == 1 and report["status"] == "incomplete"
    [problem] = report["problems"]
    assert problem["kind"] == "missing" and problem["index"] == 2
    assert "segments up to 3 sealed" in problem["what"]
    central.close()
