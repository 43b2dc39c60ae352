"""An incident's evidence package: one zip with the clip, snapshot, facts, dispatch history and the audit entries
about it, whose SHA-256 manifest matches what is inside; the export is audited and refused to technicians."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from support.web import h264_clip, insert_event, insert_media, jpeg, login, make_central

from kuzet.central.auth import audit
from kuzet.central.web import create_app
from kuzet.shared import ids, timeutil


@pytest.fixture
def incident(tmp_path):
    central = make_central(tmp_path)
    event = insert_event(central, event_type="loitering", severity="high", zone="platform")
    snapshot = insert_media(central, jpeg(), "snapshot", "image/jpeg", event["event_id"])
    clip_bytes = h264_clip(tmp_path / "clip.mp4")
    clip = insert_media(central, clip_bytes, "clip", "video/mp4", event["event_id"])
    db = central.db()
    db["clips"].insert(
        {
            "clip_id": ids.new_id(),
            "device": "cam-01",
            "event_id": event["event_id"],
            "sha256": clip,
            "size": len(clip_bytes),
            "state": "complete",
            "created_at": timeutil.now_wire(),
        }
    )
    db.execute("UPDATE events SET snapshot_sha256 = ? WHERE event_id = ?", [snapshot, event["event_id"]])
    dispatch_id = ids.new_id()
    db["dispatches"].insert(
        {"dispatch_id": dispatch_id, "event_id": event["event_id"], "unit": "badge-0001", "state": "sent"}
    )
    db["dispatch_log"].insert(
        {"dispatch_id": dispatch_id, "state": "sent", "at": timeutil.now_wire(), "by": "op"}
    )
    audit.append(db, "operator", "event.ack", f"event:{event['event_id']}", {})
    audit.append(db, "routing", "dispatch.sent", dispatch_id, {"unit": "badge-0001"})
    audit.append(db, "operator", "event.ack", "event:someone-else", {})
    yield central, event, {"clip": clip, "snapshot": snapshot}
    central.close()


def _export(central, username: str, event_id: str):
    client = create_app(central).test_client()
    login(client, username)
    return client.get(f"/events/{event_id}/evidence.zip")


def test_the_package_holds_the_evidence_and_its_manifest_matches(incident):
    central, event, media = incident
    response = _export(central, "operator", event["event_id"])
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.is_streamed
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    names = set(archive.namelist())
    assert names == {
        "clip.mp4",
        "snapshot.jpg",
        "facts.json",
        "dispatches.json",
        "audit.json",
        "MANIFEST.sha256",
        "manifest.json",
    }
    manifest = {}
    for line in archive.read("MANIFEST.sha256").decode().splitlines():
        digest, name = line.split("  ", 1)
        manifest[name] = digest
    assert set(manifest) == names - {"MANIFEST.sha256", "manifest.json"}
    for name, digest in manifest.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name
    # The media are the stored evidence, byte for byte (their names are their SHA-256).
    assert manifest["clip.mp4"] == media["clip"] and manifest["snapshot.jpg"] == media["snapshot"]
    facts = json.loads(archive.read("facts.json"))
    assert facts["event"]["event_id"] == event["event_id"] and facts["site_timezone"] == "Asia/Almaty"
    assert facts["started_local"].endswith("+05:00")
    dispatches = json.loads(archive.read("dispatches.json"))
    assert [d["unit"] for d in dispatches] == ["badge-0001"] and dispatches[0]["log"][0]["state"] == "sent"
    about = json.loads(archive.read("audit.json"))
    assert [e["action"] for e in about] == ["event.ack", "dispatch.sent"]  # not another event's entries
    note = json.loads(archive.read("manifest.json"))
    assert note["exported_by"] == "operator" and len(note["files"]) == 5


def test_the_export_is_audited(incident):
    central, event, _media = incident
    _export(central, "supervisor", event["event_id"]).get_data()
    entry = audit.entries(central.db(), action="evidence.export")[0]
    assert (entry["actor"], entry["target"]) == ("supervisor", f"event:{event['event_id']}")
    assert "clip.mp4" in entry["detail"]["files"]
    assert audit.verify(central.db())[0]


def test_technicians_may_not_export_and_nothing_is_audited(incident):
    central, event, _media = incident
    response = _export(central, "technician", event["event_id"])
    assert response.status_code == 403
    assert audit.entries(central.db(), action="evidence.export") == []


def test_an_altered_clip_is_not_exported(incident):
    central, event, media = incident
    path = central.media_dir / media["clip"][:2] / media["clip"]
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    response = _export(central, "operator", event["event_id"])
    assert response.status_code == 409
    assert audit.entries(central.db(), action="evidence.export") == []


def test_an_unknown_event_is_404(incident):
    central, _event, _media = incident
    assert _export(central, "operator", ids.new_id()).status_code == 404


def test_the_package_speaks_the_exporters_language_and_keeps_the_english(incident):
    from kuzet.central import alerts
    from kuzet.central.auth import preferences

    central, event, _media = incident
    db = central.db()
    dispatch_id = db.execute("SELECT dispatch_id FROM dispatches").fetchone()[0]
    english, key, params = alerts.stored_columns(
        alerts.say("note_sent", mode="nearest", unit="badge-0001", metres=195, attempt=1)
    )
    for detail in (
        {"detail": "badge-near at 195 m"},
        {"detail": english, "detail_key": key, "detail_params": params},
    ):
        db["dispatch_log"].insert(
            {"dispatch_id": dispatch_id, "state": "sent", "at": timeutil.now_wire(), "by": "routing"} | detail
        )
    preferences.update(db, "operator", language="ru")
    archive = zipfile.ZipFile(io.BytesIO(_export(central, "operator", event["event_id"]).get_data()))
    facts = json.loads(archive.read("facts.json"))
    assert facts["language"] == "ru"
    assert facts["words"] == {"type": "Праздное нахождение", "severity": "Высокая", "status": "Новое"}
    _first, old, new = json.loads(archive.read("dispatches.json"))[0]["log"]
    assert old["note"] == "badge-near at 195 m"  # a row from before keys: its own text
    assert new["detail"] == "nearest to badge-0001, 195 m, attempt 1"  # the machine-readable English
    assert new["note"] == "ближайший наряд: badge-0001, 195 м, попытка 1"
