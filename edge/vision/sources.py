"""Frame sources: Raspberry Pi camera, USB camera, RTSP/HTTP stream, video file, folder of images.

A source is iterated for ``Frame``s and never raises because of what the camera or file does: a stalled or
dropped stream is reported in ``state``, logged and reopened with exponential backoff; unreadable frames are
counted and skipped; a file that ends just ends (or starts again when looping). ``state`` and ``counters`` feed
the camera's status heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from kuzet.edge.vision.config import SourceSection
from kuzet.edge.vision.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class FrameSource:
    """Iterable of frames with a reportable state; subclasses implement ``_run``."""

    def __init__(self, section: SourceSection):
        self.section = section
        self.state = "starting"
        self.counters = {"frames": 0, "corrupt": 0, "reconnects": 0}
        self._closed = threading.Event()
        self._index = 0
        self._last_emit = 0.0

    def __iter__(self) -> Iterator[Frame]:
        try:
            for image, ts in self._run():
                if self._closed.is_set():
                    break
                if not self._rate_allows():
                    continue
                frame = Frame(image=image, index=self._index, ts=ts)
                self._index += 1
                self.counters["frames"] += 1
                yield frame
        finally:
            self._release()
            if self.state in ("running", "starting", "reconnecting"):
                self.state = "closed" if self._closed.is_set() else "ended"

    def close(self) -> None:
        self._closed.set()

    def _run(self) -> Iterator[tuple[np.ndarray, float]]:
        raise NotImplementedError

    def _release(self) -> None:
        pass

    def _rate_allows(self) -> bool:
        """Live sources drop frames above the limit; recorded ones (file, images) wait instead."""
        limit = self.section.fps_limit
        if limit <= 0:
            return True
        now = time.monotonic()
        wait = self._last_emit + 1.0 / limit - now
        if wait > 0:
            if self.section.kind not in ("file", "images"):
                return False
            self._closed.wait(wait)
        self._last_emit = time.monotonic()
        return True

    def _set_state(self, state: str, level: int = logging.INFO, detail: str = "") -> None:
        if state != self.state:
            log.log(
                level,
                "source %s: %s%s",
                self.section.location or self.section.kind,
                state,
                f" ({detail})" if detail else "",
            )
        self.state = state

    def _backoff(self, attempt: int) -> bool:
        """Wait before reconnect attempt ``attempt`` (1, 2, ...); False when closed meanwhile."""
        delay = min(self.section.backoff_max_s, self.section.backoff_initial_s * 2 ** (attempt - 1))
        return not self._closed.wait(delay)

    def _valid(self, image: np.ndarray | None, shape: tuple | None) -> bool:
        ok = image is not None and image.ndim == 3 and image.shape[2] == 3 and image.size > 0
        if ok and shape is not None and image.shape != shape:
            ok = False
        if not ok:
            self.counters["corrupt"] += 1
        return ok


class VideoFileSource(FrameSource):
    """A video file; ``ts`` is the position in the file (seconds). Unreadable stretches are skipped."""

    def _run(self):
        path = self.section.location
        attempt = 0
        while not self._closed.is_set():
            cap = cv2.VideoCapture(path)
            self._cap = cap
            if not cap.isOpened():
                self._set_state("error: cannot open video file", logging.ERROR, path)
                attempt += 1
                if not self.section.loop or not self._backoff(attempt):
                    return
                self.counters["reconnects"] += 1
                continue
            attempt = 0
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            fps = fps if 0 < fps < 1000 else 25.0
            declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            yield from self._play(cap, fps, declared)
            cap.release()
            if not self.section.loop or self._closed.is_set():
                return
            self.counters["reconnects"] += 1
            log.debug("source %s: looping", path)

    def _play(self, cap, fps: float, declared: int):
        position = 0  # frame number in the file
        bad_in_row = 0
        shape = None
        pace_start = time.monotonic()
        self._set_state("running")
        while not self._closed.is_set():
            ok, image = cap.read()
            if ok and self._valid(image, shape):
                shape = image.shape
                bad_in_row = 0
                ts = position / fps
                if self.section.realtime:
                    delay = pace_start + ts - time.monotonic()
                    if delay > 0 and self._closed.wait(delay):
                        return
                yield image, ts
                position += 1
                continue
            if not ok and (declared <= 0 or position >= declared - 1):
                return  # the normal end
            if not ok:
                self.counters["corrupt"] += 1
            bad_in_row += 1
            if bad_in_row >= self.section.max_corrupt_in_row:
                self._set_state(
                    "running" if self.section.loop else "ended",
                    logging.WARNING,
                    f"{bad_in_row} unreadable frames in a row at frame {position} of {declared}: rest of file skipped",
                )
                return
            # Skip past the damage: decoders stay stuck on a broken frame unless moved on.
            position += 1
            cap.set(cv2.CAP_PROP_POS_FRAMES, position)

    def _release(self):
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()


class ImageFolderSource(FrameSource):
    """Images of a folder in name order; ``ts`` steps by 1/fps_limit (1 s when unset)."""

    def _run(self):
        folder = Path(self.section.location)
        step = 1.0 / self.section.fps_limit if self.section.fps_limit > 0 else 1.0
        position = 0
        while not self._closed.is_set():
            files = (
                sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if folder.is_dir()
                else []
            )
            if not files:
                self._set_state("error: no images", logging.ERROR, f"{folder} has no image files")
                return
            self._set_state("running")
            for path in files:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if not self._valid(image, None):
                    log.warning("source %s: unreadable image %s skipped", folder, path.name)
                    continue
                yield image, position * step
                position += 1
            if not self.section.loop:
                return


class LiveSource(FrameSource):
    """A live OpenCV capture (USB index or RTSP/HTTP URL): reopened with backoff when it fails or stalls."""

    def _open(self):
        s = self.section
        if s.kind == "usb":
            cap = cv2.VideoCapture(int(s.uri or 0))
        else:
            timeout_ms = int(s.stall_timeout_s * 1000)
            cap = cv2.VideoCapture(
                s.uri,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
            )
        if cap.isOpened() and s.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, s.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, s.size[1])
        if s.kind == "usb":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        return cap

    def _run(self):
        attempt = 0
        while not self._closed.is_set():
            cap = self._cap = self._open()
            if not cap.isOpened():
                self._set_state("reconnecting", logging.WARNING, "cannot open")
            else:
                self._set_state("running")
                bad_in_row = 0
                last_good = time.monotonic()
                while not self._closed.is_set():
                    ok, image = cap.read()
                    if ok and self._valid(image, None):
                        attempt = 0
                        bad_in_row = 0
                        last_good = time.monotonic()
                        yield image, time.time()
                        continue
                    bad_in_row += 1
                    stalled = time.monotonic() - last_good > self.section.stall_timeout_s
                    if not ok or stalled or bad_in_row >= self.section.max_corrupt_in_row:
                        reason = "stalled" if stalled else ("stream ended" if not ok else "corrupt frames")
                        self._set_state("reconnecting", logging.WARNING, reason)
                        break
            cap.release()
            attempt += 1
            if not self._backoff(attempt):
                return
            self.counters["reconnects"] += 1

    def _release(self):
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS only)."""

    def _run(self):
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            self._set_state(
                "error: picamera2 unavailable",
                logging.ERROR,
                f"{exc}; the 'picamera2' source works only on Raspberry Pi OS (apt install python3-picamera2); "
                'use kind = "usb" or "rtsp" elsewhere',
            )
            return
        size = tuple(self.section.size or (1280, 720))
        attempt = 0
        while not self._closed.is_set():
            camera = None
            try:
                camera = Picamera2()
                # libcamera's "RGB888" is laid out B, G, R in memory: what OpenCV calls BGR.
                camera.configure(camera.create_video_configuration(main={"size": size, "format": "RGB888"}))
                camera.start()
                self._set_state("running")
                while not self._closed.is_set():
                    image = camera.capture_array("main")
                    if self._valid(image, None):
                        attempt = 0
                        yield image, time.time()
            except Exception as exc:  # noqa: BLE001 - libcamera raises many kinds; all mean "reopen"
                self._set_state("reconnecting", logging.WARNING, f"camera failed: {exc}")
            finally:
                if camera is not None:
                    try:
                        camera.close()
                    except Exception:  # noqa: BLE001
                        pass
            attempt += 1
            if not self._backoff(attempt):
                return
            self.counters["reconnects"] += 1


class _Misconfigured(FrameSource):
    def __init__(self, section: SourceSection, problem: str):
        super().__init__(section)
        self._problem = problem

    def _run(self):
        self._set_state(f"error: {self._problem}", logging.ERROR)
        return iter(())


def open_source(section: SourceSection) -> FrameSource:
    if section.kind != "picamera2" and not section.location:
        return _Misconfigured(section, f"source kind {section.kind!r} needs 'uri' (or 'path')")
    kind = {
        "file": VideoFileSource,
        "images": ImageFolderSource,
        "usb": LiveSource,
        "rtsp": LiveSource,
        "picamera2": PiCameraSource,
    }[section.kind]
    return kind(section)
