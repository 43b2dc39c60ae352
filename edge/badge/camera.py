"""The body camera: one reader thread keeps the latest frame for whoever needs it (evidence, live stream).

The camera runs only while someone holds it (``acquire``/``release``): an idle badge saves its battery.
A video file stands in for the camera in the demo and the tests.
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
        """(sequence number, BGR frame) of the newest frame, or (seq, None) before the first."""
        return self._seq, self._frame

    def _open(self):
        import cv2

        capture = cv2.VideoCapture(int(self.source) if self.source.isdigit() else self.source)
        if not capture.isOpened():
            raise OSError(f"cannot open camera source {self.source!r}")
        return capture

    def _run(self) -> None:
        period = 1.0 / self.fps
        capture = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if capture is None:
                    capture = self._open()
                    self.error = None
                ok, frame = capture.read()
                if not ok:
                    capture.release()
                    capture = None
                    if not self.loop and not self.source.isdigit():
                        self.error = "end of the video file"
                        return
                    continue
                self._frame = frame
                self._seq += 1
            except Exception as exc:  # the camera cable came loose: keep trying
                self.error = str(exc)
                log.warning("camera: %s", exc)
                self._stop.wait(2.0)
                continue
            self._stop.wait(max(0.0, period - (time.monotonic() - started)))
        if capture is not None:
            capture.release()
