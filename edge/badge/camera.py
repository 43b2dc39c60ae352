"""The body camera: one reader thread keeps the latest frame for whoever needs it (evidence, live stream).

The camera runs only while someone holds it (``acquire``/``release``): an idle badge saves its battery.
A video file stands in for the camera in the demo and the tests.

The badge decodes with PyAV (FFmpeg) rather than OpenCV: a Pi Zero 2 W has 512 MB, and OpenCV's bindings alone
cost a badge ~40 MB of resident memory for work PyAV does in a few. Frames stay ``av.VideoFrame`` (YUV) until
an encoder needs them, so nothing is converted that is not used.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class Camera:
    def __init__(self, source: str, fps: float = 10.0, loop: bool = True):
        self.source, self.fps, self.loop = source, fps, loop
        self._lock = threading.Lock()
        self._users = 0
        self._frame = None
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            thread = self._thread if self._users == 0 else None
            if thread is not None:
                self._stop.set()
                self._thread = None
        if thread is not None:
            thread.join(timeout=5)
            self._frame = None

    def latest(self):
        """(sequence number, ``av.VideoFrame``) of the newest frame, or (seq, None) before the first."""
        return self._seq, self._frame

    @property
    def is_device(self) -> bool:
        return is_device(self.source)

    def _open(self):
        import av

        if self.is_device:
            device = f"/dev/video{self.source}" if self.source.isdigit() else self.source
            # Ask the sensor for our rate, so the kernel's buffers hold fresh frames, not stale ones.
            container = av.open(device, format="v4l2", options={"framerate": f"{self.fps:g}"})
        else:
            container = av.open(self.source)
        if not container.streams.video:
            container.close()
            raise OSError(f"camera source {self.source!r} has no video stream")
        return container

    def _run(self) -> None:
        period = 1.0 / self.fps
        container = frames = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if container is None:
                    container = self._open()
                    frames = container.decode(video=0)
                    self.error = None
                frame = next(frames, None)
                if frame is None:
                    container.close()
                    container = None
                    if not self.loop and not self.is_device:
                        self.error = "end of the video file"
                        return
                    continue
                self._frame = frame
                self._seq += 1
            except Exception as exc:  # the camera cable came loose, a corrupt frame: keep trying
                self.error = str(exc) or type(exc).__name__
                log.warning("camera: %s", self.error)
                if container is not None:
                    container.close()
                    container = None
                self._stop.wait(2.0)
                continue
            self._stop.wait(max(0.0, period - (time.monotonic() - started)))
        if container is not None:
            container.close()


def is_device(source: str) -> bool:
    """A V4L2 camera (an index or a /dev path), as opposed to a video file standing in for one."""
    return source.isdigit() or source.startswith("/dev/")


def scaled(frame, max_width: int, pix_fmt: str):
    """``frame`` converted to ``pix_fmt`` and shrunk to at most ``max_width`` (even sizes, as encoders want)."""
    width, height = frame.width, frame.height
    if width > max_width:
        height = max(2, int(height * max_width / width) // 2 * 2)
        width = max_width
    return frame.reformat(width=width, height=height, format=pix_fmt, interpolation="AREA")
