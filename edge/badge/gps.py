"""Where the badge is: NMEA from a GPS module on a serial port (pynmea2 over pyserial), the gpsd daemon over
its JSON socket protocol, or a route file walked at a steady speed for simulation and the demo.

Every source runs its own reader thread and offers the latest fix through ``current()``; a source that loses
its device keeps trying to reopen it and reports no fix meanwhile (a stale position is worse than none).
"""

from __future__ import annotations

import csv
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kuzet.edge.badge.config import GpsSection
from kuzet.shared.geo import bearing_deg, haversine_m

log = logging.getLogger(__name__)

KNOTS_TO_MPS = 0.514444
# A fix older than this is not reported as current.
FIX_MAX_AGE_S = 10.0


@dataclass(frozen=True)
class Fix:
    lat: float
    lon: float
    source: str  # "gps" | "gpsd" | "route": Location.fix
    speed_mps: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    at: float = 0.0  # time.monotonic() when received


class _ThreadedSource:
    def __init__(self) -> None:
        self._fix: Fix | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def current(self) -> Fix | None:
        fix = self._fix
        if fix is None or time.monotonic() - fix.at > FIX_MAX_AGE_S:
            return None
        return fix

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self._read()
                delay = 1.0
            except Exception as exc:  # unplugged module, gpsd restarted: try again
                log.warning("%s: %s; retrying in %.0f s", type(self).__name__, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _read(self) -> None:
        raise NotImplementedError


class NmeaParser:
    """Turns NMEA sentences into fixes: RMC gives position, speed and course; GGA the fix quality (HDOP)."""

    def __init__(self) -> None:
        self._hdop: float | None = None

    def feed(self, line: str) -> Fix | None:
        import pynmea2

        try:
            sentence = pynmea2.parse(line.strip(), check=True)
        except (pynmea2.ParseError, AttributeError, TypeError, ValueError):
            return None
        kind = getattr(sentence, "sentence_type", "")
        if kind == "GGA":
            try:
                quality = int(sentence.gps_qual or 0)
                self._hdop = (
                    float(sentence.horizontal_dil) if quality > 0 and sentence.horizontal_dil else None
                )
            except ValueError:
                self._hdop = None
            return None
        if kind != "RMC" or sentence.status != "A":
            return None
        speed = float(sentence.spd_over_grnd) * KNOTS_TO_MPS if sentence.spd_over_grnd else None
        heading = float(sentence.true_course) % 360 if sentence.true_course else None
        return Fix(
            lat=sentence.latitude,
            lon=sentence.longitude,
            source="gps",
            speed_mps=speed,
            heading_deg=heading,
            # A consumer GPS is good to about 5 m per unit of HDOP.
            accuracy_m=self._hdop * 5.0 if self._hdop else None,
            at=time.monotonic(),
        )


class SerialGps(_ThreadedSource):
    def __init__(self, port: str, baud: int):
        super().__init__()
        self.port, self.baud = port, baud

    def _read(self) -> None:
        import serial

        parser = NmeaParser()
        with serial.Serial(self.port, self.baud, timeout=1) as device:
            while not self._stop.is_set():
                raw = device.readline()
                if not raw:
                    continue
                fix = parser.feed(raw.decode("ascii", errors="replace"))
                if fix is not None:
                    self._fix = fix


class GpsdClient(_ThreadedSource):
    """gpsd's JSON protocol: send ?WATCH, read TPV reports (mode 2 = 2D fix, 3 = 3D fix)."""

    def __init__(self, host: str, port: int):
        super().__init__()
        self.host, self.port = host, port

    def _read(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall(b'?WATCH={"enable":true,"json":true}\n')
            sock.settimeout(2)
            reader = sock.makefile("r", encoding="utf-8", errors="replace")
            while not self._stop.is_set():
                try:
                    line = reader.readline()
                except TimeoutError:
                    continue
                if not line:
                    raise ConnectionError("gpsd closed the connection")
                fix = parse_tpv(line)
                if fix is not None:
                    self._fix = fix


def parse_tpv(line: str) -> Fix | None:
    try:
        report = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(report, dict) or report.get("class") != "TPV" or report.get("mode", 0) < 2:
        return None
    if "lat" not in report or "lon" not in report:
        return None
    errors = [report[k] for k in ("epx", "epy") if isinstance(report.get(k), int | float)]
    track = report.get("track")
    return Fix(
        lat=float(report["lat"]),
        lon=float(report["lon"]),
        source="gpsd",
        speed_mps=report.get("speed"),
        heading_deg=float(track) % 360 if isinstance(track, int | float) else None,
        accuracy_m=max(errors) if errors else None,
        at=time.monotonic(),
    )


def load_route(path: Path) -> list[tuple[float, float]]:
    """A GeoJSON LineString (Feature, FeatureCollection or bare geometry; [lon, lat] order) or a CSV of
    lat,lon rows (a header row is allowed)."""
    path = Path(path)
    if path.suffix.lower() in (".json", ".geojson"):
        data = json.loads(path.read_text())
        if data.get("type") == "FeatureCollection":
            data = data["features"][0]
        if data.get("type") == "Feature":
            data = data["geometry"]
        if data.get("type") != "LineString":
            raise ValueError(f"{path}: expected a GeoJSON LineString, found {data.get('type')}")
        points = [(float(lat), float(lon)) for lon, lat, *_ in data["coordinates"]]
    else:
        points = []
        with path.open(newline="") as handle:
            for row in csv.reader(handle):
                try:
                    points.append((float(row[0]), float(row[1])))
                except (ValueError, IndexError):
                    if points:  # only a header row may be unreadable
                        raise ValueError(f"{path}: bad row {row!r}; expected lat,lon") from None
    if len(points) < 2:
        raise ValueError(f"{path}: a route needs at least two points")
    return points


class RouteWalker:
    """A simulated officer walking the route at a steady speed (and round again if ``loop``)."""

    def __init__(self, points: list[tuple[float, float]], speed_mps: float, loop: bool = True):
        self.points, self.speed, self.loop = points, speed_mps, loop
        self._legs = [haversine_m(*a, *b) for a, b in zip(points, points[1:], strict=False)]
        self.length_m = sum(self._legs)
        self._started = time.monotonic()

    def start(self) -> RouteWalker:
        self._started = time.monotonic()
        return self

    def stop(self) -> None:
        pass

    def current(self) -> Fix:
        travelled = (time.monotonic() - self._started) * self.speed
        if self.loop and self.length_m > 0:
            travelled %= self.length_m
        travelled = min(travelled, self.length_m)
        for (a, b), leg in zip(zip(self.points, self.points[1:], strict=False), self._legs, strict=False):
            if travelled <= leg:
                share = travelled / leg if leg else 0.0
                lat = a[0] + (b[0] - a[0]) * share
                lon = a[1] + (b[1] - a[1]) * share
                moving = travelled < self.length_m or self.loop
                return Fix(
                    lat=lat,
                    lon=lon,
                    source="route",
                    speed_mps=self.speed if moving else 0.0,
                    heading_deg=bearing_deg(*a, *b),
                    accuracy_m=0.0,
                    at=time.monotonic(),
                )
            travelled -= leg
        lat, lon = self.points[-1]
        return Fix(lat=lat, lon=lon, source="route", speed_mps=0.0, at=time.monotonic())


def open_source(settings: GpsSection):
    if settings.source == "serial":
        return SerialGps(settings.port, settings.baud).start()
    if settings.source == "gpsd":
        return GpsdClient(settings.gpsd_host, settings.gpsd_port).start()
    points = load_route(settings.route_file)
    return RouteWalker(points, settings.route_speed_mps, settings.route_loop).start()


def distance_m(a: Fix, b: Fix) -> float:
    return haversine_m(a.lat, a.lon, b.lat, b.lon)
