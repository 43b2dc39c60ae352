"""The face watchlist end to end over a real Mosquitto: central enrols a person and sends the site's watchlist,
signed with its watchlist key, to the camera (central/watchlist/push.py), which replays real video of that person (carphone_pristine.mp4,
enrolled from frame 119, played from frames 0-99 only); central ingests the possible match; nothing is
dispatched until a supervisor confirms it; then the nearest patrol, not the far one, is sent to check."""

from __future__ import annotations

import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.patrol import Centre, inbox_has, point, wait_for

from kuzet.central.config import CentralConfig
from kuzet.central.store import registry
from kuzet.central.watchlist import entries, matches
from kuzet.central.watchlist.dispatching import dispatch_confirmed
from kuzet.central.watchlist.enrolment import EnrolledFace, Enroller, PhotoRefused
from kuzet.central.watchlist.push import WatchlistPusher
from kuzet.edge.camera.agent import CameraAgent
from kuzet.edge.camera.config import load
from kuzet.models import store
from kuzet.shared import timeutil

pytest.importorskip("dlib", reason="the 'faces' extra is not installed")
pytestmark = pytest.mark.slow

PLAYED, ENROLLED_FRAME = 100, 119
CAMERA = """
[device]
id = "cam-1"
site = "pavlodar"
lat = {lat}
lon = {lon}

[mqtt]
url = "{url}"

[source]
kind = "images"
path = "{frames}"
fps_limit = 30
loop = true

[evidence]
clips = false

[health]
heartbeat_s = 1

[storage]
dir = "{state}"

[faces]
enabled = true
cpu_share = 1.0
key_file = "{device_key}"
watchlist_key = "{public}"
"""


@pytest.fixture
def centre(tmp_path, mosquitto):
    centre = Centre(tmp_path, mosquitto.url)
    yield centre
    centre.stop()


def pem_private(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def carphone(shared_dir, folder) -> np.ndarray:
    """Frames 0-99 written to ``folder``; frame 119 returned (the enrolment picture)."""
    video = cv2.VideoCapture(str(shared_dir / "data" / "faces" / "carphone_pristine.mp4"))
    for index in range(ENROLLED_FRAME + 1):
        ok, image = video.read()
        assert ok
        if index < PLAYED:
            cv2.imwrite(str(folder / f"{index:04d}.png"), image)
    return image


def enrol_from_frame(db, image) -> str:
    """Central's quality check refuses a 176x144 video frame (too small and soft for a reference photo), so
    the test enrols that frame's face with the same models directly: the point is a different frame."""
    png = cv2.imencode(".png", image)[1].tobytes()
    with pytest.raises(PhotoRefused):
        Enroller().enrol(png)
    from kuzet.models.faces.detector import FaceDetector
    from kuzet.models.faces.embedder import FaceEmbedder

    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    face = max(FaceDetector().detect(rgb), key=lambda f: f.width)
    enrolled = EnrolledFace(FaceEmbedder().embed(rgb, face), face.box, rgb.shape[1], rgb.shape[0], 1.0, 1.0)
    entry = entries.parse_input(
        {
            "category": "missing",
            "name": "Test Person",
            "case_number": "KZ-E2E",
            "authority": "Pavlodar police",
            "reason": "end-to-end test",
            "expires_on": (timeutil.utc_now() + timedelta(days=3)).strftime("%Y-%m-%d"),
        },
        ZoneInfo(CentralConfig().site.timezone),
    )
    entry_id = entries.create(db, "supervisor", entry)
    entries.add_photo(db, "supervisor", entry_id, png, enrolled)
    return entry_id


def test_a_camera_replaying_an_enrolled_person_raises_a_match_that_a_person_confirms(
    tmp_path, mosquitto, shared_dir, centre, badges, monkeypatch
):
    monkeypatch.setenv("KUZET_HOME", str(tmp_path / "home"))
    store.ensure(allow_download=False, progress=False)
    frames = tmp_path / "frames"
    frames.mkdir()
    db = centre.db()
    entry_id = enrol_from_frame(db, carphone(shared_dir, frames))

    site_key = Ed25519PrivateKey.generate()
    (tmp_path / "watchlist.pub").write_bytes(
        site_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "device.key").write_bytes(pem_private(Ed25519PrivateKey.generate()))

    near, far = badges("badge-near", point(150)), badges("badge-far", point(1200))
    at = point(0)
    registry.register(
        db,
        registry.Registration(device_id="cam-1", kind="camera", site="pavlodar", lat=at[0], lon=at[1]),
        "test",
    )
    config = tmp_path / "camera.toml"
    config.write_text(
        CAMERA.format(
            lat=at[0],
            lon=at[1],
            url=mosquitto.url,
            frames=frames,
            state=tmp_path / "cam",
            public=tmp_path / "watchlist.pub",
            device_key=tmp_path / "device.key",
        )
    )
    agent = CameraAgent(load(config), config)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: agent.runtime.connected, what="the camera online")
        # without a watchlist the camera looks for no face at all, and says so
        wait_for(lambda: agent.status().watchlist == "none", what="status: no watchlist")
        pusher = WatchlistPusher(centre.central, site_key)  # what [watchlist] signing_key starts in central
        wait_for(pusher.run_once, what="central sending the watchlist to the camera with faces on")
        wait_for(lambda: agent.status().watchlist == "current", what="the watchlist installed")

        [match] = wait_for(
            lambda: [
                m for m in matches.listing(db, "supervisor") if m["snapshot_sha256"] and _media_arrived(db, m)
            ],
            timeout_s=90,
            what="the possible match at central with its face and scene",
        )
        assert match["entry_id"] == entry_id and match["state"] == "possible" and match["device"] == "cam-1"
        assert match["distance"] <= match["threshold"]
        assert centre.dispatches() == []  # a possible match sends nobody
        assert near.inbox.items() == []

        decided = matches.decide(db, "supervisor", match["event_id"], "confirmed", "same man, same car")
        outcome = dispatch_confirmed(centre.operations, decided, "supervisor")
        assert "badge-near" in outcome, outcome
        [item] = wait_for(inbox_has(near), what="the dispatch at the nearest badge")
        assert item.dispatch.event_id == match["event_id"]
        assert far.inbox.items() == []
    finally:
        agent.stop()
        thread.join(timeout=60)


def _media_arrived(db, match) -> bool:
    shas = (match["snapshot_sha256"], match["face_sha256"])
    return all(db.execute("SELECT 1 FROM media WHERE sha256 = ?", [s]).fetchone() for s in shas)
