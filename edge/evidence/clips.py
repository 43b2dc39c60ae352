"""Event clips: a pre-roll from a ring of recent frames, the event itself, and a post-roll after it closes.

Clips are sampled at ``fps`` (a few frames per second tell what happened and keep files small). The ring keeps
its frames JPEG-encoded, so five seconds of pre-roll cost a few hundred kilobytes, not 60 MB of raw frames on
a 1 GB board. Events that open while a clip is being recorded join it (one encoder, one upload) and the clip
runs until the last of them has closed plus the post-roll, bounded by ``max_duration_s`` and ``max_bytes``.

The container is the best this OpenCV build can write (see ``CODECS``), or the one ``codec`` names; encoding runs
on a thread of its own per clip, so a slow encoder drops clip frames rather than holding up detection.

A clip being written when the agent is killed is left where it is: the next start hands it to
``finalise_partial``, which re-encodes whatever frames can be read back into a complete file (a partial WebM or
MJPG AVI reads back up to its last flushed frame; a partial MP4 has no index and does not).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.vision.types import Frame
from shared import ids

log = logging.getLogger(__name__)

# Browser-playable first: H.264 MP4 where an encoder exists, VP8 WebM (Chromium and Firefox play it; central
# serves it as video/x-matroska), then MPEG-4 Part 2 MP4 (cheapest to encode, plays in VLC, not in browsers),
# then Motion JPEG AVI, which every OpenCV writes.
CODECS: dict[str, tuple[str, str]] = {
    "h264": ("avc1", ".mp4"),
    "vp8": ("VP80", ".webm"),
    "mp4v": ("mp4v", ".mp4"),
    "mjpg": ("MJPG", ".avi"),
}
_usable: dict[str, bool] = {}


def _can_write(workdir: Path, fourcc: str, ext: str) -> bool:
    if fourcc not in _usable:
        probe = workdir / f".probe{ext}"
        writer = cv2.VideoWriter(str(probe), cv2.VideoWriter_fourcc(*fourcc), 5, (64, 48))
        ok = writer.isOpened()
        if ok:
            writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.release()
        _usable[fourcc] = ok and probe.exists() and probe.stat().st_size > 0
        probe.unlink(missing_ok=True)
    return _usable[fourcc]


def choose_codec(workdir: Path, preference: str = "auto") -> tuple[str, str]:
    """(fourcc, extension): the preferred codec, or with "auto" (or when it cannot be written here) the first of
    CODECS this OpenCV can really write (each probed once)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if preference != "auto":
        fourcc, ext = CODECS[preference]
        if _can_write(workdir, fourcc, ext):
            return fourcc, ext
        log.warning("clips: %s cannot be written by this OpenCV; choosing another", preference)
    for fourcc, ext in CODECS.values():
        if _can_write(workdir, fourcc, ext):
            return fourcc, ext
    raise RuntimeError("this OpenCV can write none of H.264/MPEG-4 MP4, VP8 WebM or MJPG AVI: no clips")


@dataclass(frozen=True)
class ClipSettings:
    fps: float = 5.0
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    max_duration_s: float = 60.0
    max_bytes: int = 20_000_000
    max_width: int = 1280
    ring_quality: int = 80
    codec: str = "auto"  # or a key of CODECS
    encoder_queue_s: float = 3.0  # frames waiting for a slow encoder beyond this are dropped from the clip


class FrameRing:
    """The last ``pre_roll_s`` seconds at the clip's frame rate, JPEG-encoded."""

    def __init__(self, settings: ClipSettings):
        self.settings = settings
        self.frames: deque[tuple[float, bytes]] = deque()
        self._next_ts = float("-inf")

    def due(self, frame: Frame) -> bool:
        """Whether this frame is one the clip samples (at ``fps``)."""
        if frame.ts < self._next_ts - 1.0:  # the source restarted (a looped file): start sampling afresh
            self._next_ts = float("-inf")
        return frame.ts >= self._next_ts

    def offer(self, frame: Frame, image: np.ndarray) -> None:
        period = 1.0 / self.settings.fps
        # Keep the average rate when the source's frame times do not divide evenly into the clip's.
        self._next_ts = max(self._next_ts + period, frame.ts + period / 2)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.ring_quality])
        if ok:
            self.frames.append((frame.ts, data.tobytes()))
        while self.frames and frame.ts - self.frames[0][0] > self.settings.pre_roll_s:
            self.frames.popleft()
        while self.frames and self.frames[0][0] > frame.ts:  # the source went back in time
            self.frames.popleft()

    def jpegs(self) -> list[bytes]:
        return [data for _, data in self.frames]


@dataclass
class Recording:
    clip_id: str
    event_id: str
    path: Path
    started_ts: float
    events: set[str] = field(default_factory=set)
    ends_ts: float | None = None  # set when the last event closes
    frames: int = 0
    dropped: int = 0  # frames a slow encoder could not take


class _Encoder(threading.Thread):
    """Encodes one clip off the pipeline's thread: a VP8 frame costs tens of milliseconds, and the camera must
    keep looking meanwhile. Pre-roll JPEGs are decoded here too. When the clip is closed it releases the file
    and hands it over."""

    _END = object()

    def __init__(
        self, recording: Recording, fourcc: str, size, settings: ClipSettings, pre_roll: list[bytes], done
    ):
        super().__init__(name=f"clip-{recording.clip_id[-6:]}", daemon=True)
        self.recording = recording
        self.size = size
        self.writer = cv2.VideoWriter(
            str(recording.path), cv2.VideoWriter_fourcc(*fourcc), settings.fps, size
        )
        self.pre_roll = pre_roll
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, round(settings.encoder_queue_s * settings.fps)))
        self.done = done

    def offer(self, image: np.ndarray) -> None:
        try:
            self.queue.put_nowait(image)
        except queue.Full:
            self.recording.dropped += 1

    def close(self) -> None:
        self.queue.put(self._END)

    def run(self) -> None:
        try:
            for data in self.pre_roll:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if image is not None:
                    self._write(image)
            while (item := self.queue.get()) is not self._END:
                self._write(item)
        finally:
            self.writer.release()
        self.done(self.recording)

    def _write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.recording.frames += 1


class ClipRecorder:
    """Feed it every frame; tell it when events open and close. From the clip's encoder thread it calls
    ``on_finished(path, clip_id, event_id)`` with each finished clip file, or ``on_empty(clip_id, event_id)``
    for a clip that ended before a single frame was written."""

    def __init__(
        self,
        directory: Path,
        settings: ClipSettings,
        on_finished: Callable[[Path, str, str], None],
        on_empty: Callable[[str, str], None] | None = None,
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.on_finished = on_finished
        self.on_empty = on_empty
        self.ring = FrameRing(settings)
        self.current: Recording | None = None
        self._encoder: _Encoder | None = None
        self._encoders: list[_Encoder] = []
        self.fourcc, self.ext = choose_codec(self.dir, settings.codec)

    def attach(self, event_id: str, frame: Frame) -> Recording:
        """An event opened: it joins the clip being recorded, or a new one starts (whose ``event_id`` is then
        this event's). Returns the recording."""
        if self.current is None:
            self._start(event_id, frame)
        self.current.events.add(event_id)
        self.current.ends_ts = None
        return self.current

    def detach(self, event_id: str, frame: Frame) -> None:
        """An event closed: once none is left, the clip runs on for the post-roll."""
        recording = self.current
        if recording is None or event_id not in recording.events:
            return
        recording.events.discard(event_id)
        if not recording.events:
            recording.ends_ts = frame.ts + self.settings.post_roll_s

    def feed(self, frame: Frame) -> None:
        if not self.ring.due(frame):
            return
        image = self._fit(frame.image)
        self.ring.offer(frame, image)
        recording = self.current
        if recording is None:
            return
        self._encoder.offer(image)
        elapsed = frame.ts - recording.started_ts
        if (
            (recording.ends_ts is not None and frame.ts >= recording.ends_ts)
            or elapsed >= self.settings.max_duration_s
            or elapsed < 0  # the source went back in time (a looped file)
            or (recording.path.exists() and recording.path.stat().st_size >= self.settings.max_bytes)
        ):
            self.finish()

    def finish(self) -> None:
        """Close the clip being recorded now; its encoder hands it over when it has written the rest."""
        if self.current is None:
            return
        self._encoder.close()
        self.current, self._encoder = None, None

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish the clip being recorded and wait until every clip is handed over (shutdown, reload)."""
        self.finish()
        for encoder in self._encoders:
            encoder.join(timeout=timeout_s)
        self._encoders = [e for e in self._encoders if e.is_alive()]

    def _start(self, event_id: str, frame: Frame) -> None:
        clip_id = ids.new_id()
        height, width = self._fit(frame.image).shape[:2]
        self.current = Recording(clip_id, event_id, self.dir / f"{clip_id}{self.ext}", frame.ts)
        self._encoder = _Encoder(
            self.current, self.fourcc, (width, height), self.settings, self.ring.jpegs(), self._done
        )
        self._encoder.start()
        self._encoders = [e for e in self._encoders if e.is_alive()] + [self._encoder]

    def _done(self, recording: Recording) -> None:
        path = recording.path
        if recording.frames == 0 or not path.exists() or path.stat().st_size == 0:
            path.unlink(missing_ok=True)
            if self.on_empty is not None:
                self.on_empty(recording.clip_id, recording.event_id)
            return
        if recording.dropped:
            log.warning(
                "clip %s: the encoder fell behind; %d frame(s) left out", recording.clip_id, recording.dropped
            )
        log.info("clip %s finished: %d frames", recording.clip_id, recording.frames)
        self.on_finished(path, recording.clip_id, recording.event_id)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        width = image.shape[1]
        if width <= self.settings.max_width:
            return image
        scale = self.settings.max_width / width
        return cv2.resize(
            image, (self.settings.max_width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )


def finalise_partial(path: Path, settings: ClipSettings) -> Path | None:
    """Re-encode the frames that can be read back from ``path``, a clip whose writer was killed, into a complete
    file beside it (``<name>.recovered<ext>``); None when not one frame can be read. ``path`` is left alone."""
    capture = cv2.VideoCapture(str(path))
    writer = None
    target = None
    frames = 0
    try:
        while capture.isOpened():
            ok, image = capture.read()
            if not ok or image is None:
                break
            if writer is None:
                fourcc, ext = choose_codec(path.parent, settings.codec)
                target = path.with_name(f"{path.stem}.recovered{ext}")
                size = (image.shape[1], image.shape[0])
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), settings.fps, size)
            writer.write(image)
            frames += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if target is None or not target.exists() or target.stat().st_size == 0:
        if target is not None:
            target.unlink(missing_ok=True)
        return None
    log.info("clip %s: %d frame(s) recovered from the partial recording", path.stem, frames)
    return target
