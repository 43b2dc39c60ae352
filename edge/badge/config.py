"""The badge's TOML configuration, checked on load (see ``shared.config``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from kuzet.edge.updates.config import UpdatesSection
from kuzet.shared.config import DeviceSection, KeyProblem, MqttSection, Section


class GpsSection(Section):
    # "serial": NMEA from a GPS module on a serial port; "gpsd": the gpsd daemon; "route": walk a route file.
    source: Literal["serial", "gpsd", "route"] = "serial"
    port: str = "/dev/serial0"
    baud: Annotated[int, Field(gt=0)] = 9600
    gpsd_host: str = "127.0.0.1"
    gpsd_port: Annotated[int, Field(ge=1, le=65535)] = 2947
    route_file: Path | None = None  # GeoJSON LineString or CSV of lat,lon
    route_speed_mps: Annotated[float, Field(gt=0, le=60)] = 1.4  # walking pace
    route_loop: bool = True
    report_interval_s: Annotated[float, Field(gt=0, le=3600)] = 15.0
    min_movement_m: Annotated[float, Field(ge=0)] = 25.0  # report at once when moved this far

    @model_validator(mode="after")
    def _route_has_file(self) -> GpsSection:
        if self.source == "route" and self.route_file is None:
            raise KeyProblem(("route_file",), "gps.source = 'route' needs a route file (GeoJSON or CSV)")
        return self


class CameraSection(Section):
    # A V4L2 device index ("0") or a video file (demo and tests).
    source: str = "0"
    loop: bool = True  # a file source starts again at the end


class LiveSection(Section):
    fps: Annotated[float, Field(gt=0, le=10)] = 2.0
    max_kbps: Annotated[float, Field(gt=0)] = (
        256.0  # bandwidth cap: frames are re-encoded or skipped to stay under
    )
    width: Annotated[int, Field(ge=64, le=1920)] = 480
    jpeg_quality: Annotated[int, Field(ge=10, le=95)] = 60
    max_duration_s: Annotated[float, Field(gt=0, le=3600)] = 120.0  # a stream stops by itself after this


class EvidenceSection(Section):
    enabled: bool = True
    segment_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    fps: Annotated[float, Field(gt=0, le=30)] = 10.0
    width: Annotated[int, Field(ge=64, le=1920)] = 640
    # Record all the time, or only while a dispatch is active (and after a panic).
    mode: Literal["always", "dispatch"] = "dispatch"


class StorageSection(Section):
    dir: Path = Path("badge-data")
    max_evidence_mb: Annotated[float, Field(gt=0)] = 4096.0


class BadgeSection(Section):
    status_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    initial_duty: Literal["available", "busy", "off_duty"] = "off_duty"


class BadgeConfig(Section):
    device: DeviceSection
    mqtt: MqttSection = MqttSection()
    badge: BadgeSection = BadgeSection()
    gps: GpsSection = GpsSection()
    camera: CameraSection = CameraSection()
    live: LiveSection = LiveSection()
    evidence: EvidenceSection = EvidenceSection()
    updates: UpdatesSection = UpdatesSection()  # signed config updates (edge.badge.updates)
    storage: StorageSection = StorageSection()
