"""A street camera's TOML configuration: who it is, where it sends, what it looks at and for, and how it keeps
its evidence. Only ``[device] id`` is required; every other key has a default that works on street footage.

    [device]
    id = "cam-pvl-014"
    site = "pavlodar"
    lat = 52.2871
    lon = 76.9665

    [mqtt]
    url = "mqtts://kuzet.example:8883"
    [mqtt.tls]
    ca = "ca.pem"
    cert = "device.pem"
    key = "device.key"

    [source]
    kind = "rtsp"
    uri = "rtsp://192.168.1.20/stream1"

    [[zones]]
    name = "entrance"
    polygon = [[100, 300], [700, 300], [700, 570], [100, 570]]

    [[rules]]
    name = "night-entry"
    type = "zone_enter"
    zone = "entrance"
    schedule = { start = "22:00", end = "06:00" }
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from kuzet.edge.events.config import GroundSection, LineSection, RuleSection, ZoneSection, check_references
from kuzet.edge.faces.config import FacesSection
from kuzet.edge.updates.config import UpdatesSection
from kuzet.edge.vision.config import DetectorSection, MotionSection, SourceSection, TrackerSection
from kuzet.shared import config
from kuzet.shared.config import DeviceSection, KeyProblem, MqttSection, Section
from kuzet.shared.messages import Severity


class EventsSection(Section):
    update_interval_s: Annotated[float, Field(gt=0)] = 2.0  # an open event's updates: at most this often


class EvidenceSection(Section):
    snapshots: bool = True
    snapshot_quality: Annotated[int, Field(ge=30, le=100)] = 85
    clips: bool = True
    clip_min_severity: Severity = "low"  # events below this get a snapshot only
    clip_fps: Annotated[float, Field(gt=0, le=30)] = 5.0
    pre_roll_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    post_roll_s: Annotated[float, Field(ge=0, le=120)] = 5.0
    max_clip_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    max_clip_mb: Annotated[float, Field(gt=0, le=500)] = 20.0
    clip_max_width: Annotated[int, Field(ge=160, le=3840)] = 1280
    # auto: H.264 in fragmented MP4 (the Pi's hardware encoder, else libx264), else VP8 WebM, else Motion-JPEG
    # AVI; a codec named here that does not work on the board falls back the same way (see docs/camera.md).
    clip_codec: Literal["auto", "h264", "vp8", "mjpg"] = "auto"
    # The time drawn on snapshots is the site's local time (with its offset), as inspectors read it; messages
    # keep UTC. Kazakhstan is on UTC+5 everywhere since 2024 (Asia/Almaty).
    stamp_timezone: str = "Asia/Almaty"

    @field_validator("stamp_timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Asia/Almaty')") from exc
        return name


class OutboxSection(Section):
    # After an outage or a restart: messages per second from the backlog.
    backlog_per_s: Annotated[float, Field(gt=0)] = 20.0
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 50
    # The uplink budget for everything the outbox sends.
    max_kbytes_per_s: Annotated[float, Field(gt=0)] = 2000.0
    resend_after_s: Annotated[float, Field(gt=0)] = 60.0
    # Over this the oldest clips are dropped (never events), and while the disk has less than min_free_mb free.
    clip_quota_mb: Annotated[float, Field(gt=0)] = 2000.0
    min_free_mb: Annotated[float, Field(ge=0)] = 200.0
    keep_delivered_clips_s: Annotated[float, Field(ge=0)] = 3600.0  # central may ask for chunks again


class HealthSection(Section):
    heartbeat_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class LiveSection(Section):
    max_fps: Annotated[float, Field(gt=0, le=10)] = 2.0
    width: Annotated[int, Field(ge=160, le=1920)] = 640
    quality: Annotated[int, Field(ge=30, le=95)] = 70
    default_duration_s: Annotated[float, Field(gt=0)] = 60.0
    max_duration_s: Annotated[float, Field(gt=0)] = 600.0


class StorageSection(Section):
    dir: Path = Path("camera-state")  # outbox, open events and clips: survives restarts


class CameraConfig(Section):
    device: DeviceSection
    mqtt: MqttSection = MqttSection()
    source: SourceSection = SourceSection()
    motion: MotionSection = MotionSection()
    detector: DetectorSection = DetectorSection()
    tracker: TrackerSection = TrackerSection()
    zones: list[ZoneSection] = []
    lines: list[LineSection] = []
    rules: list[RuleSection] = []
    ground: GroundSection | None = None  # image points with their positions in metres: km/h and metres
    events: EventsSection = EventsSection()
    evidence: EvidenceSection = EvidenceSection()
    outbox: OutboxSection = OutboxSection()
    health: HealthSection = HealthSection()
    live: LiveSection = LiveSection()
    updates: UpdatesSection = UpdatesSection()
    storage: StorageSection = StorageSection()
    faces: FacesSection = FacesSection()  # the face watchlist (docs/faces.md): off by default

    @model_validator(mode="after")
    def _rules_refer_to_real_zones(self) -> CameraConfig:
        check_references(self.zones, self.lines, self.rules)
        detected = set(self.detector.labels)
        for index, rule in enumerate(self.rules):
            for key, unit in (("min_speed_kmh", "km/h"), ("min_area_m2", "m^2")):
                if getattr(rule, key) is not None and self.ground is None:
                    raise KeyProblem(
                        ("rules", index, key),
                        f"{unit} needs the camera's [ground]: 4 or more image points with their positions in "
                        "metres",
                    )
            if not detected & set(rule.resolved_labels):
                # e.g. object_left watches backpacks and suitcases, which the default detector list leaves out
                raise KeyProblem(
                    ("rules", index, "labels"),
                    f"rule {rule.name!r} watches for {', '.join(rule.resolved_labels)}, but [detector] labels "
                    f"keeps only {', '.join(sorted(detected))}: add the labels the rule needs there",
                )
        return self


def load(path: str | Path) -> CameraConfig:
    return config.load(path, CameraConfig)
