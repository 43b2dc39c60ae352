"""Event clips: a pre-roll from a ring of recent frames, the event itself, and a post-roll after it closes.

Clips are sampled at ``fps`` (a few frames per second tell what happened and keep files small). The ring keeps
its frames JPEG-encoded, so five seconds of pre-roll cost a few hundred kilobytes, not 60 MB of raw frames on
a 1 GB board. Events that open while a clip is being recorded join it (one encoder, one upload) and the clip
runs until the last of them has closed plus the post-roll, bounded by ``max_duration_s`` and ``max_bytes``.

The file is H.264 in fragmented MP4 where this board can encode it, else VP8 WebM, else Motion-JPEG AVI (see
``edge.evidence.video``), or the codec ``codec`` names; encoding runs on a thread of its own per clip, so a slow
encoder drops clip frames rather than holding up detection.

A clip being written when the agent is killed is left where it is: the next start hands it to
``finalise_partial``, which copies the frames that read back into a complete file (a fragmented MP4 up to its
last whole fragment, a second of frames at most lost; WebM and AVI up to their last written frame).
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

from kuzet.edge.evidence.readback import copy_readable
from kuzet.edge.evidence.video import ClipWriter, Codec, choose_codec
from kuzet.edge.vision.types import Frame
from kuzet.shared import ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSettings:
    fps: float = 5.0
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    max_duration_s: float = 60.0
    max_bytes: int = 20_000_000
    max_width: int = 1280
    ring_quality: int = 80
    codec: str = "auto"  # or a key of edge.evidence.video.CODECS
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
    frames: int = 0  # frames in the file
    dropped: int = 0  # frames a slow encoder could not take
    full: bool = False  # the file reached max_bytes: the clip ends


class _Encoder(threading.Thread):
    """Encodes one clip off the pipeline's thread (an H.264 frame costs milliseconds, a VP8 one tens of them,
    and the camera must keep looking meanwhile). Pre-roll JPEGs are decoded here too. When the clip is closed
    it finishes the file and hands it over."""

    _END = object()

    def __init__(
        self, recording: Recording, codec: Codec, size, settings: ClipSettings, pre_roll: list[bytes], done
    ):
        super().__init__(name=f"clip-{recording.clip_id[-6:]}", daemon=True)
        self.recording = recording
        self.codec = codec
        self.size = size
        self.settings = settings
        self.pre_roll = pre_roll
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, round(settings.encoder_queue_s * settings.fps)))
        self.done = done
        self._ended = False

    def offer(self, image: np.ndarray) -> None:
        try:
            self.queue.put_nowait(image)
        except queue.Full:
            self.recording.dropped += 1

    def close(self) -> None:
        self.queue.put(self._END)

    def run(self) -> None:
        try:
            self._encode()
        except Exception:  # the encoder refused the clip (a driver, a full disk): it is reported, not kept
            log.exception("clip %s: the %s encoder failed", self.recording.clip_id, self.codec.encoder)
            while not self._ended:
                self._ended = self.queue.get() is self._END
            self.recording.frames = 0
            self.recording.path.unlink(missing_ok=True)
        self.done(self.recording)

    def _encode(self) -> None:
        settings = self.settings
        writer = ClipWriter(
            self.recording.path,
            self.codec,
            self.size,
            settings.fps,
            settings.max_bytes,
            max_bit_rate=_bit_budget(settings),
        )
        try:
            for data in self.pre_roll:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if image is not None:
                    self._write(writer, image)
            while not self._ended:
                item = self.queue.get()
                self._ended = item is self._END
                if not self._ended:
                    self._write(writer, item)
        finally:
            writer.close()
        self.recording.frames = writer.frames

    def _write(self, writer: ClipWriter, image: np.ndarray) -> None:
        if not self.recording.full:  # once full, what is still queued is let go
            self.recording.full = not writer.write(image)
            self.recording.frames = writer.frames


def _bit_budget(settings: ClipSettings) -> int:
    """The rate (bit/s) at which a clip of the longest length (pre-roll included) still fits in max_bytes,
    with a margin for the encoder's overshoot (libx264 goes ~12 % over a tight rate here)."""
    longest_s = settings.pre_roll_s + settings.max_duration_s  # the post-roll is inside max_duration_s
    return max(50_000, int(settings.max_bytes * 8 * 0.75 / longest_s))


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
        self.codec = choose_codec(settings.codec)

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
            or recording.full
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
        self.current = Recording(clip_id, event_id, self.dir / f"{clip_id}{self.codec.ext}", frame.ts)
        self._encoder = _Encoder(
            self.current, self.codec, (width, height), self.settings, self.ring.jpegs(), self._done
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
        if recording.full:
            log.info(
                "clip %s reached its %d-byte bound and was ended there",
                recording.clip_id,
                self.settings.max_bytes,
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


def finalise_partial(path: Path) -> Path | None:
    """Copy the frames that can be read back from ``path``, a clip whose writer was killed, into a complete
    file of the same kind beside it (``<name>.recovered<ext>``); None when not one frame reads back. ``path``
    is left alone."""
    target = path.with_name(f"{path.stem}.recovered{path.suffix}")
    frames, _ = copy_readable(path, target)
    if frames == 0:
        return None
    log.info("clip %s: %d frame(s) recovered from the partial recording", path.stem, frames)
    return target
