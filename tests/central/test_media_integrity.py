"""Evidence edited on disk is never served as it is (central.store.integrity): media files are named by their
SHA-256, so the page and the API check the bytes before sending them (409 and a critical alert otherwise),
and ``kuzet central verify-media`` sweeps them all, names each altered file and exits 1."""

from __future__ import annotations

import argparse
import os

import pytest
from support.web import insert_event, insert_media, login, token_for

from kuzet.central import alerts, cli
from kuzet.central.web import create_app


@pytest.fixture
def central_options():
    return {"accounts": True}


def _flip_a_byte(central, sha256: str, at: int) -> None:
    path = central.media_dir / sha256[:2] / sha256
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_altered_snapshot_and_clip_are_refused_alerted_and_named(central, capsys, monkeypatch):
    event = insert_event(central)
    snapshot = insert_media(
        central, b"\xff\xd8" + os.urandom(3000) + b"\xff\xd9", "snapshot", "image/jpeg", event["event_id"]
    )
    clip = insert_media(central, os.urandom(50_000), "clip", "video/mp4", event["event_id"])
    intact = insert_media(central, os.urandom(4000), "clip", "video/mp4", event["event_id"])
    app = create_app(central)
    page = app.test_client()
    login(page, "operator")
    api = {"Authorization": f"Bearer {token_for(central, 'operator')}"}
    for sha in (snapshot, clip):  # served while intact, then cached as checked
        assert page.get(f"/media/{sha}").status_code == 200

    _flip_a_byte(central, snapshot, 100)
    _flip_a_byte(central, clip, 40_000)

    for sha in (snapshot, clip):
        response = page.get(f"/media/{sha}")
        assert response.status_code == 409 and b"altered" in response.data
        assert page.get(f"/media/{sha}", headers={"Range": "bytes=40000-40999"}).status_code == 409
        assert app.test_client().get(f"/media/{sha}", headers=api).status_code == 409
    assert page.get(f"/media/{intact}").status_code == 200
    open_alerts = alerts.listing(central.db())
    assert {a["level"] for a in open_alerts} == {"critical"}
    assert sorted(sha for a in open_alerts for sha in (snapshot, clip) if sha in a["message"]) == sorted(
        [snapshot, clip]
    )
    assert len(open_alerts) == 2  # one per file, however often it was asked for
    assert all(a["event_id"] == event["event_id"] for a in open_alerts)

    args = argparse.Namespace(config=None, data_dir=str(central.data_dir), action="verify-media", json=False)
    monkeypatch.setenv("LANG", "en_US.UTF-8")  # an English-speaking administrator (the site speaks Russian)
    assert cli.run(args) == 1
    out = capsys.readouterr().out
    assert f"snapshot {snapshot}" in out and f"clip {clip}" in out and intact not in out
    assert "3 media files checked, 2 do not match" in out

    # Put back as they were: the sweep passes.
    _flip_a_byte(central, snapshot, 100)
    _flip_a_byte(central, clip, 40_000)
    assert cli.run(args) == 0
    assert page.get(f"/media/{clip}").status_code == 200
