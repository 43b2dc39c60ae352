"""Evidence on real footage: an H.264 MP4 clip with pre-roll and post-roll, bounded in length and size, that
survives its writer being killed, and a snapshot JPEG with the event's box drawn."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from kuzet.edge.evidence import video
from kuzet.edge.evidence.clips import ClipRecorder, ClipSettings, finalise_partial
from kuzet.edge.evidence.snapshot import snapshot
from kuzet.edge.evidence.video import Codec
from kuzet.edge.vision.types import Frame

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


def read_back(path) -> tuple[str, str, list[np.ndarray], float]:
    """(codec, container, BGR frames, duration in seconds) of a clip file, as FFmpeg reads it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        images = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
        return stream.codec_context.name, container.format.name, images, container.duration / av.time_base


def record(frames, directory, settings, attach_at=10, close_at=None):
    """Feed ``frames`` to a recorder; one event opens at frame ``attach_at`` (and closes at ``close_at``).
    Returns (the finished clip's path, its recording, the recorder)."""
    finished = []
    recorder = ClipRecorder(directory, settings, lambda *args: finished.append(args))
    recording = None
    for frame in frames:
        if frame.index == attach_at:
            recording = recorder.attach("EVENT-A", frame)
        if frame.index == close_at:
            recorder.detach("EVENT-A", frame)
        recorder.feed(frame)
    recorder.close()
    [(path, clip_id, event_id)] = finished
    assert (clip_id, event_id) == (recording.clip_id, "EVENT-A")
    return path, recording, recorder


def closest_source_frame(image: np.ndarray, frames: list[Frame]) -> int:
    """The index of the footage frame (of those a 5 fps clip samples) that ``image`` shows."""
    sampled = frames[::2]
    return min(sampled, key=lambda f: np.abs(f.image.astype(np.int16) - image).mean()).index


def test_clip_is_h264_mp4_with_pre_roll_event_and_post_roll(frames, tmp_path):
    finished = []
    # A deep encoder queue: this test feeds frames far faster than real time, and none may be dropped here.
    settings = ClipSettings(fps=5, pre_roll_s=2, post_roll_s=3, encoder_queue_s=60)
    recorder = ClipRecorder(tmp_path, settings, lambda *args: finished.append(args))
    for frame in frames[:110]:
        if frame.index == 40:
            recording = recorder.attach("EVENT-A", frame)
        if frame.index == 50:
            joined = recorder.attach("EVENT-B", frame)  # a second event joins the same clip
            assert joined is recording
        if frame.index == 60:
            recorder.detach("EVENT-A", frame)
        if frame.index == 70:
            recorder.detach("EVENT-B", frame)
        recorder.feed(frame)
    recorder.close()  # waits for the encoder to hand the clip over
    [(path, finished_id, event_id)] = finished
    assert (finished_id, event_id) == (recording.clip_id, "EVENT-A")
    codec, container, images, duration_s = read_back(path)
    assert (path.suffix, codec, "mp4" in container.split(",")) == (".mp4", "h264", True)
    # 2 s pre-roll + 3 s of events + 3 s post-roll at 5 fps: 2 s before frame 40 to 3 s after frame 70
    assert len(images) == recording.frames and 36 <= len(images) <= 44
    assert duration_s == pytest.approx(len(images) / 5)
    assert images[0].shape == frames[0].image.shape
    assert recording.dropped == 0
    # The clip starts with the 2 s of footage before the event (frames 18 to 38 were in the ring when it
    # opened at 40) and ends with the post-roll, 3 s after the last event closed at 70.
    assert closest_source_frame(images[0], frames[:110]) == 18
    assert closest_source_frame(images[-1], frames[:110]) == 100


def test_clip_length_is_bounded(frames, tmp_path):
    settings = ClipSettings(fps=5, pre_roll_s=1, max_duration_s=4, encoder_queue_s=60)
    path, recording, _ = record(frames, tmp_path, settings, attach_at=20)  # the event never closes
    _, _, images, duration_s = read_back(path)
    assert len(images) == recording.frames <= (1 + 4) * 5 + 1
    assert duration_s <= 5.2


def test_clip_bit_rate_fits_the_longest_clip_in_max_bytes(frames, tmp_path):
    # 11 s (1 s pre-roll + 10 s) must fit in 400 kB, half of what the encoder's quality target would take.
    settings = ClipSettings(fps=5, pre_roll_s=1, max_duration_s=10, max_bytes=400_000, encoder_queue_s=60)
    path, recording, _ = record(frames, tmp_path, settings, attach_at=10)
    assert not recording.full and path.stat().st_size <= 400_000
    _, _, images, duration_s = read_back(path)
    assert 54 <= len(images) == recording.frames <= 58  # all of it: 1 s and 10 s at 5 fps
    assert duration_s == pytest.approx(len(images) / 5)


def test_a_clip_that_reaches_max_bytes_ends_there_and_still_plays_to_its_end(frames, tmp_path):
    # Motion JPEG cannot go below ~15 kB a frame here: far above the rate 400 kB a minute allows.
    settings = ClipSettings(fps=5, pre_roll_s=1, max_bytes=400_000, encoder_queue_s=60, codec="mjpg")
    path, recording, _ = record(frames, tmp_path, settings, attach_at=10)
    assert recording.full and path.stat().st_size <= 400_000
    _, _, images, _ = read_back(path)
    assert 5 <= len(images) == recording.frames < 60  # 70 frames were due
    assert closest_source_frame(images[-1], frames) < 130  # it ended early, at its size bound


def test_shutdown_finishes_the_clip_being_recorded(frames, tmp_path):
    path, recording, _ = record(frames[:30], tmp_path, ClipSettings(fps=5))
    assert len(read_back(path)[2]) == recording.frames > 5


@pytest.mark.parametrize(
    ("codec", "suffix", "encoded"),
    [("h264", ".mp4", "h264"), ("vp8", ".webm", "vp8"), ("mjpg", ".avi", "mjpeg")],
)
def test_each_codec_can_be_chosen(frames, tmp_path, codec, suffix, encoded):
    settings = ClipSettings(fps=5, pre_roll_s=1, encoder_queue_s=60, codec=codec)
    path, recording, recorder = record(frames[:60], tmp_path, settings, attach_at=20, close_at=30)
    assert recorder.codec.name == codec and path.suffix == suffix
    name, _, images, duration_s = read_back(path)
    assert name == encoded and len(images) == recording.frames > 10
    assert duration_s == pytest.approx(len(images) / 5)


def test_a_codec_this_board_cannot_encode_falls_back(monkeypatch, caplog):
    # A VP8 encoder that refuses to open (an out-of-range setting): what a board without a working one does.
    broken = Codec("vp8", "libvpx", "webm", ".webm", "yuv420p", {"cpu-used": "99"}, bits_per_pixel=0.4)
    monkeypatch.setitem(video.CODECS, "vp8", (broken,))
    monkeypatch.setattr(video, "_usable", {})
    with caplog.at_level(logging.INFO, logger="kuzet.edge.evidence.video"):
        chosen = video.choose_codec("vp8")
    assert chosen.name == "h264"
    assert "the libvpx encoder does not work here" in caplog.text
    assert "vp8 cannot be encoded here; writing h264 instead" in caplog.text


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
    assert (recorder.codec.name, recorder.codec.ext) == ("h264", ".mp4")  # the av wheel has libx264
    for frame in frames:
        if frame.index == 10:
            recorder.attach("EVENT-A", frame)
        recorder.feed(frame)  # 150 frames at once: far faster than any camera delivers them
    recording = recorder.current
    recorder.close()
    [(path, _, _)] = finished
    assert len(read_back(path)[2]) == recording.frames > 0
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
from kuzet.edge.evidence.clips import ClipRecorder, ClipSettings
from kuzet.edge.vision.types import Frame
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
print(recording.path, recording.frames, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # mid-clip: the file is never finished
"""


@pytest.mark.parametrize(("codec", "encoded"), [("h264", "h264"), ("vp8", "vp8"), ("mjpg", "mjpeg")])
def test_a_clip_cut_by_sigkill_is_recovered_up_to_what_reached_the_file(shared_dir, tmp_path, codec, encoded):
    video = shared_dir / "data/pets09-s2l1/vtest.avi"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_RECORDING, str(video), str(tmp_path), codec],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    assert done.returncode == -9, done.stderr
    assert done.stderr == ""  # not one codec warning from OpenCV or FFmpeg
    path, frames_written = done.stdout.split()[-2:]
    partial = Path(path)
    recovered = finalise_partial(partial)
    assert recovered is not None and recovered.suffix == partial.suffix and partial.exists()
    # A complete file now, decodable to its end, at the clip's size: every frame written before the kill,
    # less those an MP4 fragment still held in memory (a second's worth at most).
    name, _, images, duration_s = read_back(recovered)
    assert name == encoded and images[0].shape == (576, 768, 3)
    assert int(frames_written) - 6 <= len(images) <= int(frames_written) + 1
    assert duration_s == pytest.approx(len(images) / 5, abs=0.21)


@pytest.mark.parametrize("codec", ["h264", "vp8", "mjpg"])
def test_a_clip_cut_inside_a_frame_is_recovered_without_the_broken_frame(frames, tmp_path, codec):
    # A kill in the middle of writing a fragment (or a frame) leaves its last frame cut short.
    settings = ClipSettings(fps=5, pre_roll_s=1, encoder_queue_s=60, codec=codec)
    path, recording, _ = record(frames[:100], tmp_path, settings, attach_at=20, close_at=40)
    data = path.read_bytes()
    partial = tmp_path / f"cut{path.suffix}"
    partial.write_bytes(data[: len(data) * 7 // 10])
    recovered = finalise_partial(partial)
    assert recovered is not None
    _, _, images, _ = read_back(recovered)  # every frame decodes: the cut one was left out
    assert recording.frames // 2 <= len(images) < recording.frames


def test_a_file_that_is_no_video_is_not_recovered(tmp_path):
    partial = tmp_path / "clip.mp4"
    partial.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 100)
    assert finalise_partial(partial) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_the_snapshot_stamp_is_the_sites_local_time_with_its_offset():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from kuzet.edge.evidence.snapshot import visible_stamp

    moment = datetime(2026, 12, 5, 7, 47, 19, 412000, tzinfo=UTC)
    assert visible_stamp(moment.astimezone(ZoneInfo("Asia/Almaty"))) == "2026-12-05 12:47:19 UTC+05:00"
    assert visible_stamp(moment) == "2026-12-05 07:47:19 UTC"
    with pytest.raises(ValueError, match="time zone"):
        visible_stamp(moment.replace(tzinfo=None))


def test_a_camera_stamps_in_asia_almaty_unless_configured_and_refuses_an_unknown_zone():
    from kuzet.edge.camera.config import EvidenceSection

    assert EvidenceSection().stamp_timezone == "Asia/Almaty"
    assert EvidenceSection(stamp_timezone="Europe/Moscow").stamp_timezone == "Europe/Moscow"
    with pytest.raises(ValueError, match="unknown time zone 'Asia/Pavlodar'"):
        EvidenceSection(stamp_timezone="Asia/Pavlodar")
