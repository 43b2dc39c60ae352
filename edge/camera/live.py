"""A low-rate live JPEG stream started by central's ``live_start``: bounded in rate and size, and it stops by
itself after its duration, so a forgotten stream never eats a cellular uplink."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cv2

from kuzet.edge.camera.config import LiveSection
from kuzet.edge.evidence.snapshot import encode_jpeg
from kuzet.edge.vision.types import Frame
from kuzet.shared import ids, messages
from kuzet.shared.messages import LiveFrame

MAX_LIVE_BYTES = 360 * 1024  # base64 of this stays under the live message's 512 KiB limit


class LiveStream:
    def __init__(self, settings: LiveSection, device: str, send: Callable[[LiveFrame], None]):
        self.settings = settings
        self.device = device
        self.send = send
        self._lock = threading.Lock()
        self.stream_id: str | None = None
        self._until = 0.0
        self._period = 1.0
        self._width = settings.width
        self._next = 0.0
        self._seq = 0

    @property
    def active(self) -> bool:
        with self._lock:
            if self.stream_id is not None and time.monotonic() >= self._until:
                self.stream_id = None  # its time is up
            return self.stream_id is not None

    def start(
        self, fps: float | None = None, duration_s: float | None = None, width: int | None = None
    ) -> dict:
        """Start (or restart) the stream; returns what was granted, which may be less than asked."""
        s = self.settings
        fps = min(float(fps or s.max_fps), s.max_fps)
        duration = min(float(duration_s or s.default_duration_s), s.max_duration_s)
        width = max(160, min(int(width or s.width), s.width))
        if fps <= 0 or duration <= 0:
            raise ValueError("fps and duration_s must be positive")
        with self._lock:
            self.stream_id = ids.new_id()
            self._until = time.monotonic() + duration
            self._period = 1.0 / fps
            self._width = width
            self._next = 0.0
            self._seq = 0
            return {"stream_id": self.stream_id, "fps": fps, "duration_s": duration, "width": width}

    def stop(self) -> bool:
        with self._lock:
            was = self.stream_id is not None
            self.stream_id = None
            return was

    def offer(self, frame: Frame) -> None:
        """Send this frame if a stream is on and one is due."""
        if not self.active:
            return
        now = time.monotonic()
        with self._lock:
            if now < self._next or self.stream_id is None:
                return
            self._next = now + self._period
            stream_id, seq, width = self.stream_id, self._seq, self._width
            self._seq += 1
        image = frame.image
        if image.shape[1] > width:
            height = round(image.shape[0] * width / image.shape[1])
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        data, w, h = encode_jpeg(image, self.settings.quality, MAX_LIVE_BYTES)
        self.send(
            LiveFrame(
                device=self.device,
                stream_id=stream_id,
                seq=seq,
                width=w,
                height=h,
                data=messages.to_base64(data),
            )
        )
