"""What the heartbeat reports about the board and the pipeline: rates over the last interval and system figures."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

THERMAL_ZONES = ("/sys/class/thermal/thermal_zone0/temp", "/sys/devices/virtual/thermal/thermal_zone0/temp")


def cpu_temperature_c() -> float | None:
    """The SoC temperature on a Raspberry Pi / Jetson; None on boards (and PCs) that do not expose one."""
    for zone in THERMAL_ZONES:
        try:
            value = float(Path(zone).read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
        if -60 <= value <= 150:
            return round(value, 1)
    return None


def disk_free_mb(path: Path) -> float:
    return round(shutil.disk_usage(path).free / 1_000_000, 1)


def memory_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class PipelineMeter:
    """Frames in and processed, detector time and motion share since the last heartbeat (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reset(time.monotonic())

    def _reset(self, now: float) -> None:
        self.since = now
        self.frames_in = 0
        self.frames_processed = 0
        self.detector_ms = 0.0
        self.detector_runs = 0
        self.motion = 0.0

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1

    def processed(self, detector_ms: float, motion_share: float) -> None:
        with self._lock:
            self.frames_processed += 1
            self.motion += motion_share
            if detector_ms > 0:
                self.detector_ms += detector_ms
                self.detector_runs += 1

    def take(self) -> dict[str, float]:
        """The figures since the last call, and start a new interval."""
        with self._lock:
            now = time.monotonic()
            elapsed = max(now - self.since, 1e-6)
            figures = {
                "fps_in": round(self.frames_in / elapsed, 2),
                "fps_processed": round(self.frames_processed / elapsed, 2),
                "detector_ms": round(self.detector_ms / self.detector_runs, 2) if self.detector_runs else 0.0,
                "motion_share": round(min(1.0, self.motion / self.frames_processed), 4)
                if self.frames_processed
                else 0.0,
            }
            self._reset(now)
            return figures
