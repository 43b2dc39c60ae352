"""The camera agent end to end on real footage through a real Mosquitto: availability and heartbeat, events
with snapshots, every command answered, bad input survived, a clean shutdown that says "offline"."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from kuzet.edge.camera.agent import CameraAgent
from kuzet.edge.camera.config import load
from kuzet.edge.delivery import ClipSpool, Outbox
from kuzet.models import store
from kuzet.shared import ids, messages, timeutil, topics
from kuzet.shared.config import ConfigError, MqttSection
from kuzet.shared.messages import Command
from kuzet.shared.mqtt import Link

SITE, DEVICE = "pavlodar", "cam-test"

CONFIG = """
[device]
id = "{device}"
lat = 52.2871
lon = 76.9665

[mqtt]
url = "{url}"

[source]
kind = "file"
path = "{video}"
loop = true
realtime = true

[[zones]]
name = "all"
polygon = [[0, 0], [768, 0], [768, 576], [0, 576]]

[[rules]]
name = "anyone"
type = "zone_enter"
zone = "all"
{extra}
[evidence]
clips = false

[health]
heartbeat_s = 1

[live]
max_fps = 4

[storage]
dir = "{state}"
"""


class Central:
    """A stand-in for central: records everything the camera sends and sends it commands."""

    def __init__(self, url):
        self.received: list[messages.Envelope] = []
        self.cond = threading.Condition()
        self.link = Link(MqttSection(url=url), "central-test")
        self.link.subscribe(topics.all_up(), self._on_message)
        self.link.start()

    def _on_message(self, topic, payload):
        message = messages.decode(topic, payload)  # the camera must always speak the contract
        with self.cond:
            self.received.append(message)
            self.cond.notify_all()

    def of(self, kind: str, **match) -> list:
        with self.cond:
            return [
                m
                for m in self.received
                if m.type == kind and all(getattr(m, k) == v for k, v in match.items())
            ]

    def wait(self, kind: str, timeout=30.0, **match):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [
                    m
                    for m in self.received
                    if m.type == kind and all(getattr(m, k) == v for k, v in match.items())
                ]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind} {match} within {timeout} s")
                self.cond.wait(left)

    def command(self, name: str, **args) -> messages.CommandResult:
        command = Command(device=DEVICE, command_id=ids.new_id(), name=name, args=args)
        self.link.publish(topics.down(SITE, DEVICE, "command"), messages.encode(command))
        return self.wait("command_result", command_id=command.command_id)


@pytest.fixture
def setup(tmp_path, mosquitto, footage, monkeypatch):
    monkeypatch.setenv("KUZET_HOME", str(tmp_path / "home"))
    store.ensure(allow_download=False, progress=False)
    path = tmp_path / "camera.toml"

    def write(extra: str = "") -> None:
        path.write_text(
            CONFIG.format(
                device=DEVICE,
                url=mosquitto.url,
                video=footage / "pets09-s2l1" / "vtest.avi",
                state=tmp_path / "state",
                extra=extra,
            )
        )

    write()
    central = Central(mosquitto.url)
    agent = CameraAgent(load(path), path)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    yield central, agent, write, thread
    agent.stop()
    thread.join(timeout=60)
    central.link.stop()


def test_camera_agent_end_to_end(setup, mosquitto):
    central, agent, write_config, thread = setup

    # availability (retained) and a heartbeat with the figures operators watch
    assert central.wait("availability").state == "online"
    central.wait("status")
    status = central.wait("status", timeout=30)
    while not status.fps_in:
        time.sleep(0.5)
        status = central.of("status")[-1]
    assert status.kind == "camera" and status.model.name and len(status.model.sha256) == 64
    assert status.outbox_depth is not None and status.disk_free_mb > 0 and status.detection_enabled
    assert status.source_state == "running"

    # people on the square: an event opened with a snapshot of its frame
    opened = central.wait("event", state="open", event_type="zone_enter", timeout=60)
    assert opened.location.lat == pytest.approx(52.2871) and opened.frame_size == (768, 576)
    snap = central.wait("snapshot", event_id=opened.event_id)
    assert snap.sha256 == opened.snapshot_sha256
    image = cv2.imdecode(np.frombuffer(messages.from_base64(snap.data), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (576, 768, 3)

    # snapshot on demand: a short manual event with its picture
    result = central.command("snapshot")
    assert result.ok
    manual = central.wait("event", event_id=result.data["event_id"], state="closed")
    assert manual.event_type == "manual"
    central.wait("snapshot", event_id=manual.event_id)

    # a live stream, bounded in rate, that stops by itself
    result = central.command("live_start", fps=50, duration_s=2)
    assert result.ok and result.data["fps"] == 4  # capped at [live] max_fps
    time.sleep(3.5)
    frames = central.of("live", stream_id=result.data["stream_id"])
    assert 2 <= len(frames) <= 4 * 2 + 1
    assert [f.seq for f in frames] == list(range(len(frames)))
    time.sleep(1.0)
    assert len(central.of("live", stream_id=result.data["stream_id"])) == len(frames)  # stopped by itself
    assert central.command("live_stop").message == "no live stream was on"

    # detection off and on
    assert central.command("detection_off").ok
    assert agent.pipeline.enabled is False
    assert central.command("detection_on").ok

    # a frame that breaks a stage is counted and skipped; the camera carries on
    original, failures = agent.pipeline.process, []

    def flaky(frame):
        if not failures:
            failures.append(frame.index)
            raise RuntimeError("a detector hiccup")
        return original(frame)

    agent.pipeline.process = flaky
    deadline = time.monotonic() + 30
    while central.of("status")[-1].counters.get("frame_errors", 0) < 1:
        assert time.monotonic() < deadline, "no heartbeat reported the failed frame"
        time.sleep(0.2)
    assert thread.is_alive()

    # updates are not supported in this installation unless configured
    assert not central.command("install_update", bundle="/tmp/x.tar").ok

    # reload: a broken file is refused and the old configuration stays; a good one is applied
    write_config('[[rules]]\nname = "bad"\ntype = "crowd"\nzone = "nowhere"\n')
    result = central.command("reload_config")
    assert not result.ok and "nowhere" in result.message
    assert len(agent.engine.rules) == 1
    write_config('[[rules]]\nname = "crowd"\ntype = "crowd"\nzone = "all"\nmax_count = 3\n')
    result = central.command("reload_config")
    assert result.ok and "2 rule(s)" in result.message
    assert len(agent.engine.rules) == 2

    # a command held at the broker for too long is not carried out
    stale = Command(
        device=DEVICE,
        command_id=ids.new_id(),
        name="detection_off",
        ts=timeutil.utc_now() - timedelta(hours=1),
    )
    central.link.publish(topics.down(SITE, DEVICE, "command"), messages.encode(stale))
    result = central.wait("command_result", command_id=stale.command_id)
    assert not result.ok and "expired" in result.message and agent.pipeline.enabled

    # garbage on the command topic is ignored; the camera keeps answering
    central.link.publish(topics.down(SITE, DEVICE, "command"), b"{not json")
    assert central.command("live_stop").ok

    # a clean stop closes its events and says "offline" (retained)
    agent.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert central.wait("availability", state="offline")
    opened_ids = {e.event_id for e in central.of("event", state="open")}
    closed_ids = {e.event_id for e in central.of("event", state="closed")}
    assert opened_ids <= closed_ids  # nothing left open


def test_bad_configuration_is_explained(tmp_path):
    path = tmp_path / "camera.toml"
    path.write_text('[device]\nid = "Cam 1"\n[evidence]\nclip_fsp = 5\n')
    with pytest.raises(ConfigError) as error:
        load(path)
    text = str(error.value)
    assert "device.id" in text and "evidence.clip_fsp: unknown key" in text


ZONE = '[[zones]]\nname = "square"\npolygon = [[0, 0], [10, 0], [10, 10]]\n'


@pytest.mark.parametrize(
    "body, line",
    [
        (
            ZONE + '[[rules]]\nname = "r1"\ntype = "zone_enter"\nzone = "square"\n'
            '[[rules]]\nname = "r2"\ntype = "loitering"\nzone = "sqaure"\n',
            "rules.1.zone: no zone named 'sqaure'; expected one of the [[zones]] names: 'square' (got 'sqaure')",
        ),
        (
            '[[rules]]\nname = "cross"\ntype = "line_crossing"\nline = "gate"\n',
            "rules.0.line: no line named 'gate'; no [[lines]] are defined (got 'gate')",
        ),
        ('[[rules]]\nname = "r"\ntype = "crowd"\n', "rules.0.zone: a crowd rule needs a zone"),
        (ZONE + ZONE, "zones.1.name: 'square' is used twice; expected a unique name (got 'square')"),
        (
            '[[rules]]\nname = "bags"\ntype = "object_left"\n',
            "rules.0.labels: rule 'bags' watches for backpack",
        ),
    ],
)
def test_a_cross_check_error_names_the_file_and_the_key(tmp_path, body, line):
    """Checks that look at several keys at once still blame one key, and never dump the whole file."""
    path = tmp_path / "camera.toml"
    path.write_text('[device]\nid = "cam-1"\n' + body)
    with pytest.raises(ConfigError) as error:
        load(path)
    first, second = str(error.value).splitlines()
    assert first == f"{path}: invalid configuration"
    assert second.startswith(f"  {line}")
    assert "top level" not in second and "{" not in second.replace("[[", "").replace("]]", "")


def test_a_rule_for_objects_the_detector_drops_is_refused(tmp_path):
    path = tmp_path / "camera.toml"
    path.write_text('[device]\nid = "cam-1"\n[[rules]]\nname = "bags"\ntype = "object_left"\n')
    with pytest.raises(ConfigError, match="rule 'bags' watches for backpack"):
        load(path)
    path.write_text(
        '[device]\nid = "cam-1"\n[detector]\nlabels = ["person", "backpack", "suitcase"]\n'
        '[[rules]]\nname = "bags"\ntype = "object_left"\n'
    )
    assert load(path).rules[0].resolved_labels[0] == "backpack"


def test_the_documented_example_configuration_loads():
    config = load(Path(__file__).resolve().parents[2] / "docs" / "camera.example.toml")
    assert config.device.id == "cam-pvl-014" and config.mqtt.tls.ca.name == "ca.pem"
    assert {r.type for r in config.rules} == {
        "crowd", "loitering", "no_stopping", "line_crossing", "object_left", "running", "littering", "person_down"
    }  # fmt: skip


def test_clips_a_killed_agent_was_recording_are_recovered_or_reported_lost(tmp_path, footage, monkeypatch):
    """On start, every clip the previous run promised (its event went out naming it) is finished from its
    partial file when that can be read back, and otherwise reported lost: none is dropped unaccounted."""
    monkeypatch.setenv("KUZET_HOME", str(tmp_path / "home"))
    store.ensure(allow_download=False, progress=False)
    state = tmp_path / "state"
    path = tmp_path / "camera.toml"
    path.write_text(
        CONFIG.format(
            device=DEVICE,
            url="mqtt://127.0.0.1:1",
            video=footage / "pets09-s2l1" / "vtest.avi",
            state=state,
            extra="",
        ).replace("clips = false", 'clip_codec = "mjpg"')
    )
    recording = state / "recording"
    recording.mkdir(parents=True)
    # A recording cut short: the AVI's index (written at the end) and its last frames are missing.
    capture = cv2.VideoCapture(str(footage / "pets09-s2l1" / "vtest.avi"))
    partial, unreadable, missing = ids.new_id(), ids.new_id(), ids.new_id()
    writer = cv2.VideoWriter(
        str(recording / f"{partial}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (768, 576)
    )
    for _ in range(20):
        writer.write(capture.read()[1])
    writer.release()
    capture.release()
    whole = (recording / f"{partial}.avi").read_bytes()
    (recording / f"{partial}.avi").write_bytes(whole[: len(whole) * 3 // 4])
    (recording / f"{unreadable}.mp4").write_bytes(os.urandom(50_000))  # not a video at all
    (recording / "stray.avi").write_bytes(b"killed before its event was queued")
    outbox = Outbox(state / "outbox.db")
    spool = ClipSpool(state / "clips", outbox, site=SITE, device=DEVICE)
    event_id = ids.new_id()
    with outbox.transaction() as tx:
        for clip_id, ext in ((partial, ".avi"), (unreadable, ".mp4"), (missing, ".avi")):
            spool.promise(tx, clip_id, recording=recording / f"{clip_id}{ext}", event_id=event_id)
    outbox.close()

    agent = CameraAgent(load(path), path)
    try:
        agent._recover_clips()
        assert agent.spool.promises() == []
        [recovered] = agent.spool.clips()
        assert (recovered.clip_id, recovered.event_id, recovered.content_type) == (
            partial,
            event_id,
            "video/x-msvideo",
        )
        clip_file = agent.spool.dir / recovered.file
        capture = cv2.VideoCapture(str(clip_file))
        frames = 0
        while capture.read()[0]:
            frames += 1
        capture.release()
        assert 5 <= frames <= 20
        assert agent.outbox.depth_by_kind() == {"clip": recovered.count, "clip_lost": 2}
        topic = topics.up(SITE, DEVICE, "clip_lost")
        lost = [
            messages.decode(topic, r.payload) for r in agent.outbox.next_rows(100) if r.kind == "clip_lost"
        ]
        assert sorted((m.clip_id, m.reason, m.event_id) for m in lost) == sorted(
            [(unreadable, "interrupted", event_id), (missing, "interrupted", event_id)]
        )
        counters = agent.outbox.counters()
        assert (counters["clips_recovered"], counters["clips_lost_interrupted"]) == (1, 2)
        assert list(recording.iterdir()) == []  # nothing left behind, the stray file included
    finally:
        agent.outbox.close()
