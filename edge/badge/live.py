"""A live stream on request: low-rate JPEG frames over MQTT within a bandwidth cap, stopping by itself.

The cap is a token bucket in bytes: a frame that would overdraw it is re-encoded at a lower quality, and
skipped if even that is too big, so a mobile link is never flooded.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable

from kuzet.edge.badge.camera import Camera, scaled
from kuzet.edge.badge.config import LiveSection
from kuzet.shared import ids
from kuzet.shared.messages import LiveFrame, to_base64

log = logging.getLogger(__name__)
MIN_QUALITY = 20


class LiveStream:
    def __init__(
        self,
        device: str,
        camera: Camera,
        settings: LiveSection,
        send: Callable[[LiveFrame], None],
        fps: float | None = None,
        duration_s: float | None = None,
        width: int | None = None,
        on_stop: Callable[[LiveStream], None] = lambda stream: None,
    ):
        self.device, self.camera, self.settings, self._send = device, camera, settings, send
        self.stream_id = ids.new_id()
        self.fps = min(fps or settings.fps, settings.fps)
        self.duration_s = min(duration_s or settings.max_duration_s, settings.max_duration_s)
        self.width = max(64, min(width or settings.width, settings.width))
        self.bytes_per_s = settings.max_kbps * 1000 / 8
        self.sent_frames = self.sent_bytes = self.skipped = 0
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live", daemon=True)

    def start(self) -> LiveStream:
        self.camera.acquire()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _encode(self, frame, budget: float) -> tuple[bytes, int, int] | None:
        image = scaled(frame, self.width, "rgb24").to_image()
        quality = self.settings.jpeg_quality
        while quality >= MIN_QUALITY:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            if buffer.tell() <= budget:
                return buffer.getvalue(), image.width, image.height
            quality -= 15
        return None

    def _run(self) -> None:
        period = 1.0 / self.fps
        started = last = time.monotonic()
        # One second of allowance at the start, refilled at the cap's rate, never above two seconds' worth.
        tokens = self.bytes_per_s
        last_seq = -1
        try:
            while not self._stop.is_set() and time.monotonic() - started < self.duration_s:
                now = time.monotonic()
                tokens = min(2 * self.bytes_per_s, tokens + (now - last) * self.bytes_per_s)
                last = now
                seq, frame = self.camera.latest()
                if frame is not None and seq != last_seq:
                    last_seq = seq
                    encoded = self._encode(frame, tokens)
                    if encoded is None:
                        self.skipped += 1
                    else:
                        data, width, height = encoded
                        tokens -= len(data)
                        self._send(
                            LiveFrame(
                                device=self.device,
                                stream_id=self.stream_id,
                                seq=self.sent_frames,
                                width=width,
                                height=height,
                                data=to_base64(data),
                            )
                        )
                        self.sent_frames += 1
                        self.sent_bytes += len(data)
                self._stop.wait(max(0.0, period - (time.monotonic() - now)))
        except Exception:
            log.exception("live stream %s failed", self.stream_id)
        finally:
            self.camera.release()
            self._on_stop(self)
