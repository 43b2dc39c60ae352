"""Evidence on real footage: a clip with pre-roll and post-roll that OpenCV can play back, bounded in length,
and a snapshot JPEG with the event's box drawn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.evidence.clips import ClipRecorder, ClipSettings, finalise_partial
from edge.evidence.snapshot import snapshot
from edge.vision.types import Frame

FPS = 10.0  # vtest.avi


@pytest.fixture(scope="module")
def frames(shared_dir) -> list[Frame]:
    capture = cv2.VideoCapture(str(shared_dir / "data/pets09-s2l1/vtest.avi"))
    out = []
    while len(out) < 150:
        ok, image = capture.read()
        if not ok:
            break
        out.append(Frame(image, len(out), len(out) / FPS))
    capture.release()
    return out


def count_frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


def test_clip_has_pre_roll_event_and_post_roll(frames, tmp_path):
    finished = []
    # A deep encoder queue: this test feeds frames far faster than real time, and none may be dropped here.
    settings = ClipSettings(fps=5, pre_roll_s=2, post_roll_s=3, encoder_queue_s=60)
    recorder = ClipRecorder(tmp_path, settings, lambda *args: finished.append(args))
    for frame in frames[:110]:
        if frame.index == 40:
            clip_id = recorder.attach("EVENT-A", frame).clip_id
        if frame.index == 50:
            joined = recorder.attach("EVENT-B", frame)  # a second event joins the same clip
            assert (joined.clip_id, joined.event_id) == (clip_id, "EVENT-A")
        if frame.index == 60:
            recorder.detach("EVENT-A", frame)
        if frame.index == 70:
            recorder.detach("EVENT-B", frame)
        recorder.feed(frame)
    recorder.close()  # waits for the encoder to hand the clip over
    [(path, finished_id, event_id)] = finished
    assert (finished_id, event_id) == (clip_id, "EVENT-A")
    assert path.suffix in (".mp4", ".webm", ".avi") and path.stat().st_size > 10_000
    # 2 s pre-roll + 3 s of events + 3 s post-roll at 5 fps
    assert 36 <= count_frames(path) <= 44
    capture = cv2.VideoCapture(str(path))
    ok, image = capture.read()
    assert ok and image.shape == frames[0].image.shape
    capture.release()


def test_clip_length_is_bounded(frames, tmp_path):
    finished = []
    recorder = ClipRecorder(
        tmp_path,
        ClipSettings(fps=5, pre_roll_s=1, max_duration_s=4, encoder_queue_s=60),
        lambda *a: finished.append(a),
    )
    for frame in frames:
        if frame.index == 20:
            recorder.attach("EVENT-A", frame)  # never closes
        recorder.feed(frame)
    recorder.close()
    [(path, _, _)] = finished
    assert count_frames(path) <= (1 + 4) * 5 + 1


def test_shutdown_finishes_the_clip_being_recorded(frames, tmp_path):
    finished = []
    recorder = ClipRecorder(tmp_path, ClipSettings(fps=5), lambda *a: finished.append(a))
    for frame in frames[:30]:
        if frame.index == 10:
            recorder.attach("EVENT-A", frame)
        recorder.feed(frame)
    recorder.close()
    assert len(finished) == 1 and count_frames(finished[0][0]) > 5


def test_snapshot_draws_the_box(frames):
    image = frames[0].image
    data, width, height = snapshot(image, [((100, 100, 50, 120), "person 0.81")])
    assert data[:2] == b"\xff\xd8" and (width, height) == (image.shape[1], image.shape[0])
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    edge = decoded[150, 99:102].astype(int)  # the box's left side, 150 px down
    assert (edge[:, 2] > 180).any() and (edge[:, 1] < 90).all()  # red
    assert image[150, 100, 2] < 180 or image[150, 100, 1] > 90  # it was not red before


def test_auto_picks_a_codec_browsers_play_and_a_slow_encoder_drops_frames_not_the_camera(frames, tmp_path):
    finished = []
    recorder = ClipRecorder(tmp_path, ClipSettings(fps=5, encoder_queue_s=1), lambda *a: finished.append(a))
    assert recorder.fourcc in ("avc1", "VP80")  # H.264 where there is an encoder, else VP8 WebM
    for frame in frames:
        if frame.index == 10:
            recorder.attach("EVENT-A", frame)
        recorder.feed(frame)  # 150 frames at once: far faster than any camera delivers them
    recording = recorder.current
    recorder.close()
    [(path, _, _)] = finished
    assert count_frames(path) == recording.frames > 0
    # every sampled frame (5 fps of frames 10..149) was either encoded or counted as left out
    assert recording.frames + recording.dropped >= 70


def test_a_clip_closed_before_any_frame_is_reported_empty(tmp_path, frames):
    finished, empty = [], []
    recorder = ClipRecorder(
        tmp_path, ClipSettings(fps=5), finished.append, on_empty=lambda *a: empty.append(a)
    )
    recording = recorder.attach("EVENT-A", frames[0])  # nothing fed: not even a pre-roll
    recorder.close()
    assert finished == [] and empty == [(recording.clip_id, "EVENT-A")]
    assert not recording.path.exists()


KILLED_WHILE_RECORDING = """
import os, signal, sys, time
from pathlib import Path
import cv2
from edge.evidence.clips import ClipRecorder, ClipSettings
from edge.vision.types import Frame
video, directory, codec = sys.argv[1:4]
recorder = ClipRecorder(Path(directory), ClipSettings(fps=5, encoder_queue_s=60, codec=codec), print)
capture = cv2.VideoCapture(video)
for index in range(120):
    frame = Frame(capture.read()[1], index, index / 10)
    if index == 10:
        recording = recorder.attach("EVENT-A", frame)
    recorder.feed(frame)
while recording.frames < 40:
    time.sleep(0.05)
print(recording.path, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # mid-clip: the writer is never released
"""


@pytest.mark.parametrize("codec", ["vp8", "mjpg", "mp4v"])
def test_a_clip_cut_by_sigkill_is_finalised_when_it_can_be_read_back(shared_dir, tmp_path, codec):
    video = shared_dir / "data/pets09-s2l1/vtest.avi"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_RECORDING, str(video), str(tmp_path), codec],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == -9, done.stderr
    partial = Path(done.stdout.split()[-1])
    assert partial.exists()
    recovered = finalise_partial(partial, ClipSettings(fps=5, codec=codec))
    if partial.suffix == ".mp4":  # no index is written until the end: nothing to read back
        assert recovered is None
        assert list(tmp_path.glob("*.recovered*")) == []
        return
    assert recovered is not None and recovered.suffix == partial.suffix
    # A complete file now: every frame flushed before the kill, decodable to the end, at the clip's size.
    frames_back = count_frames(recovered)
    assert 20 <= frames_back <= 70
    capture = cv2.VideoCapture(str(recovered))
    ok, image = capture.read()
    capture.release()
    assert ok and image.shape == (576, 768, 3)
