"""Frame sources on real files: a broken video tail, a folder of images with a bad file, unreachable streams."""

from __future__ import annotations

import shutil
import threading

import pytest

from kuzet.edge.vision.config import SourceSection
from kuzet.edge.vision.sources import open_source


def test_broken_video_tail_is_counted_and_ends_cleanly(footage):
    source = open_source(
        SourceSection(kind="file", uri=str(footage / "motion/tree.avi"), max_corrupt_in_row=10)
    )
    frames = list(source)
    # The header claims 444 frames; only the first 68 decode.
    assert len(frames) == 68
    assert [f.index for f in frames] == list(range(68))
    assert source.state == "ended"
    assert source.counters["frames"] == 68
    assert source.counters["corrupt"] >= 10
    assert frames[1].ts > frames[0].ts  # file position clock


def test_file_frames_carry_position_and_native_size(footage):
    source = open_source(SourceSection(kind="file", path=footage / "pets09-s2l1/vtest.avi"))
    first = []
    for frame in source:
        first.append(frame)
        if len(first) == 3:
            source.close()
    assert len(first) == 3
    assert first[0].image.shape == (576, 768, 3)
    assert first[2].ts == pytest.approx(2 / 10.0)  # 10 fps file
    assert source.state == "closed"


def test_looping_file_starts_again(footage):
    source = open_source(
        SourceSection(kind="file", uri=str(footage / "motion/tree.avi"), loop=True, max_corrupt_in_row=3)
    )
    count = 0
    for _ in source:
        count += 1
        if count == 150:  # more than the 68 readable frames: it looped twice
            source.close()
    assert count == 150
    assert source.counters["reconnects"] >= 2


def test_image_folder_skips_unreadable_files(footage, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for image in sorted((footage / "street/labelme_street").glob("*.jpg")):
        shutil.copy(image, folder / image.name)
    (folder / "00000102b.jpg").write_bytes(b"not a jpeg at all")
    (folder / "notes.txt").write_text("ignored: not an image")
    source = open_source(SourceSection(kind="images", path=folder, fps_limit=0))
    frames = list(source)
    assert len(frames) == 5
    assert source.counters["corrupt"] == 1
    assert source.state == "ended"


def test_missing_file_reports_error_without_raising(tmp_path):
    source = open_source(SourceSection(kind="file", uri=str(tmp_path / "nope.avi")))
    assert list(source) == []
    assert source.state.startswith("error")


def test_unconfigured_source_reports_error():
    source = open_source(SourceSection(kind="rtsp"))
    assert list(source) == []
    assert "uri" in source.state


def test_unreachable_stream_reconnects_with_backoff_until_closed():
    from kuzet.central.broker import free_port

    section = SourceSection(
        kind="rtsp",
        uri=f"rtsp://127.0.0.1:{free_port()}/stream",
        stall_timeout_s=0.5,
        backoff_initial_s=0.05,
        backoff_max_s=0.1,
    )
    source = open_source(section)
    frames = []
    reader = threading.Thread(target=lambda: frames.extend(source), daemon=True)
    reader.start()
    pause = threading.Event()
    for _ in range(200):  # up to 10 s
        if source.counters["reconnects"] >= 2:
            break
        pause.wait(0.05)
    assert source.state == "reconnecting"
    source.close()
    reader.join(10)
    assert not reader.is_alive()
    assert frames == []


def test_picamera2_off_a_pi_is_a_clear_error():
    source = open_source(SourceSection(kind="picamera2"))
    assert list(source) == []
    assert source.state == "error: picamera2 unavailable"


def test_usb_uri_must_be_an_index():
    with pytest.raises(ValueError, match="device index"):
        SourceSection(kind="usb", uri="/dev/video0")
