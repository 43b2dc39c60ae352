"""The face watchlist on a camera agent replaying real video through a real Mosquitto: an enrolled face (taken
from a frame the camera never plays) raises one ``watchlist_match`` with the face crop and the scene; a face on
no list leaves no trace: not in any published message, not in the outbox, not in the clip spool."""

from __future__ import annotations

import glob
import sqlite3
import threading

import cv2
import numpy as np
import pytest

from kuzet.edge.camera.agent import CameraAgent
from kuzet.edge.camera.config import load
from kuzet.edge.faces.watchlist import Watchlist
from kuzet.models import store
from kuzet.shared import ids, messages, timeutil
from kuzet.shared.messages import WATCHLIST_MATCH

pytest.importorskip("dlib", reason="the 'faces' extra is not installed")

DEVICE = "cam-faces"
PLAYED = 100  # frames 0-99 are played; the enrolled face comes from frame 119
ENROLLED_FRAME = 119

CONFIG = """
[device]
id = "{device}"
site = "pavlodar"
lat = 52.2871
lon = 76.9665

[mqtt]
url = "{url}"

[source]
kind = "images"
path = "{frames}"
fps_limit = 30

[evidence]
clips = true

[health]
heartbeat_s = 1

[storage]
dir = "{state}"

[faces]
enabled = true
cpu_share = 1.0
"""


def _embed_largest(image_bgr):
    from kuzet.models.faces.detector import FaceDetector
    from kuzet.models.faces.embedder import FaceEmbedder

    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    face = max(FaceDetector().detect(rgb), key=lambda f: f.width)
    return FaceEmbedder().embed(rgb, face)


@pytest.fixture(scope="module")
def material(shared_dir, tmp_path_factory):
    """(folder of the played frames, the enrolled embedding, embeddings of 25 other people's photos)."""
    video = cv2.VideoCapture(str(shared_dir / "data" / "faces" / "carphone_pristine.mp4"))
    frames = tmp_path_factory.mktemp("carphone")
    enrolled = None
    for index in range(ENROLLED_FRAME + 1):
        ok, image = video.read()
        assert ok, f"frame {index} of carphone_pristine.mp4 did not decode"
        if index < PLAYED:
            cv2.imwrite(str(frames / f"{index:04d}.png"), image)
        elif index == ENROLLED_FRAME:
            enrolled = _embed_largest(image)
    others = [
        _embed_largest(cv2.imread(path))
        for path in sorted(glob.glob(str(shared_dir / "data" / "faces" / "pairs" / "img*.jpg")))[:25]
    ]
    return frames, enrolled, np.stack(others)


class Recorder:
    """Every message published under the site, decoded against the contract."""

    def __init__(self, url):
        from kuzet.shared.config import MqttSection
        from kuzet.shared.mqtt import Link

        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.link = Link(MqttSection(url=url), "central-test")
        self.link.subscribe("#", self._on_message)
        self.link.start()

    def _on_message(self, topic, payload):
        with self.lock:
            self.received.append((topic, payload))

    def decoded(self) -> list[messages.Envelope]:
        with self.lock:
            return [messages.decode(t, p) for t, p in self.received if "/up/" in t]


def run_camera(tmp_path, mosquitto, frames, watchlist: Watchlist):
    path = tmp_path / "camera.toml"
    path.write_text(CONFIG.format(device=DEVICE, url=mosquitto.url, frames=frames, state=tmp_path / "state"))
    recorder = Recorder(mosquitto.url)
    agent = CameraAgent(load(path), path)
    agent.faces.set_watchlist(watchlist)
    agent.run()  # the folder plays once; run() returns after draining the outbox
    recorder.link.stop()
    return agent, recorder.decoded()


def watchlist_of(entry_ids, embeddings) -> Watchlist:
    expires = timeutil.utc_now().replace(year=timeutil.utc_now().year + 1)
    return Watchlist("test", tuple(entry_ids), np.asarray(embeddings, np.float32), expires)


@pytest.fixture
def home(tmp_path, shared_dir, monkeypatch):
    """A home whose detector is imported from the shared material (skipped without it)."""
    monkeypatch.setenv("KUZET_HOME", str(tmp_path / "home"))
    store.ensure(allow_download=False, progress=False)


def test_an_enrolled_face_raises_one_match_with_its_face_and_scene(home, tmp_path, mosquitto, material):
    frames, enrolled, others = material
    wanted = ids.new_id()
    entry_ids = [wanted] + [ids.new_id() for _ in others]
    agent, received = run_camera(tmp_path, mosquitto, frames, watchlist_of(entry_ids, [enrolled, *others]))

    matches = [m for m in received if m.type == "event" and m.event_type == "watchlist_match"]
    assert {m.state for m in matches} == {"open", "closed"} and len({m.event_id for m in matches}) == 1
    opened = next(m for m in matches if m.state == "open")
    assert set(opened.attributes) == set(WATCHLIST_MATCH)
    assert opened.attributes["entry_id"] == wanted
    assert (
        opened.attributes["distance"] <= opened.attributes["threshold"] == agent.config.faces.match_threshold
    )
    snaps = {m.sha256: m for m in received if m.type == "snapshot" and m.event_id == opened.event_id}
    scene = cv2.imdecode(np.frombuffer(messages.from_base64(snaps[opened.snapshot_sha256].data), np.uint8), 1)
    face = cv2.imdecode(
        np.frombuffer(messages.from_base64(snaps[opened.attributes["face_sha256"]].data), np.uint8), 1
    )
    assert scene.shape == (144, 176, 3)
    assert face.shape[1] >= agent.config.faces.min_face_px and face.shape[1] < scene.shape[1]
    assert opened.location.lat == pytest.approx(52.2871) and len(opened.track_ids) == 1


def test_a_face_on_no_list_leaves_no_trace(home, tmp_path, mosquitto, material):
    frames, _, others = material
    agent, received = run_camera(
        tmp_path, mosquitto, frames, watchlist_of([ids.new_id() for _ in others], others)
    )

    assert agent.faces.counters["faces_embedded"] >= 1  # the face was seen and compared...
    assert agent.faces.counters["watchlist_matches"] == 0
    # ...and nothing about it left the camera: only its heartbeat and availability were published
    assert {m.type for m in received} <= {"status", "availability"}, {m.type for m in received}
    state = tmp_path / "state"
    assert (state / "outbox.db").is_file()
    with sqlite3.connect(state / "outbox.db") as db:
        kinds = {kind for (kind,) in db.execute("SELECT kind FROM outbox UNION SELECT kind FROM delivered")}
    assert kinds <= {"status", "availability"}, kinds
    assert not [p for p in (state / "clips").rglob("*") if p.is_file()]
    assert not [p for p in (state / "recording").rglob("*") if p.is_file()]
    # the face watch keeps no face once its track has ended
    assert agent.faces._tracks == {}
