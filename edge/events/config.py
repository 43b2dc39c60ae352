"""The camera TOML's ``[[zones]]``, ``[[lines]]`` and ``[[rules]]``: what the camera watches for, and when.

Coordinates are pixels of the camera's native frame (x right, y down), as a technician reads them off a
snapshot. Speeds are in the object's own box heights per second, so one threshold works near and far from the
camera (a walking adult covers about 0.8 heights/s, a running one 2 or more).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from kuzet.edge.events.lifecycle import Policy
from kuzet.shared.config import KeyProblem, Section
from kuzet.shared.messages import EventType, Severity

PointList = list[tuple[float, float]]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

PERSON = ("person",)
VEHICLES = ("car", "truck", "bus", "motorcycle")
CARRIED = ("backpack", "handbag", "suitcase", "umbrella", "bottle", "sports ball")
DEFAULT_SEVERITY: dict[str, str] = {
    "zone_enter": "low",
    "zone_exit": "info",
    "loitering": "medium",
    "line_crossing": "medium",
    "crowd": "high",
    "no_stopping": "low",
    "object_left": "high",
    "running": "medium",
    "chase": "high",
    "repeated_stops": "medium",
    "littering": "medium",
    "person_down": "high",
}
# A rule type reported on the wire as another event type (littering is the object_left event, with its owner).
WIRE_TYPE = {"littering": "object_left"}
CAMERA_EVENT_TYPES = tuple(t for t in DEFAULT_SEVERITY if t not in WIRE_TYPE)
# The incident lifecycle's defaults by type (see lifecycle.py): a deployer's choice for a street camera at 5-25
# fps. (min_duration_s, grace_s, cooldown_s, reid_s, reid_distance in box heights)
LIFECYCLE_DEFAULTS: dict[str, tuple[float, float, float, float, float]] = {
    "zone_enter": (1.0, 3.0, 0.0, 3.0, 1.5),
    "zone_exit": (0.0, 0.0, 10.0, 3.0, 1.5),
    "loitering": (2.0, 5.0, 60.0, 5.0, 1.5),
    "line_crossing": (0.0, 0.0, 10.0, 3.0, 1.5),
    "crowd": (3.0, 5.0, 30.0, 0.0, 0.0),
    "no_stopping": (0.0, 5.0, 30.0, 5.0, 1.0),
    "object_left": (0.0, 5.0, 60.0, 5.0, 1.0),
    "running": (1.0, 2.0, 10.0, 2.0, 1.5),
    "chase": (1.0, 3.0, 30.0, 2.0, 1.5),
    "repeated_stops": (0.0, 5.0, 300.0, 5.0, 1.5),
    "littering": (0.0, 5.0, 300.0, 0.0, 1.0),
    "person_down": (0.0, 5.0, 60.0, 5.0, 1.5),
}


class ZoneSection(Section):
    name: Annotated[str, Field(min_length=1, max_length=60)]
    polygon: Annotated[PointList, Field(min_length=3)]


class LineSection(Section):
    """A directed segment from its first point to its second; "left_to_right" is as seen walking a -> b."""

    name: Annotated[str, Field(min_length=1, max_length=60)]
    points: Annotated[PointList, Field(min_length=2, max_length=2)]

    @field_validator("points")
    @classmethod
    def _not_a_point(cls, value: PointList) -> PointList:
        if value[0] == value[1]:
            raise ValueError("a line needs two different points")
        return value


class GroundSection(Section):
    """Where the frame's pixels are on the ground: four or more points of the frame (``image``, pixels) and
    their positions on the ground (``world``, metres in any fixed frame, e.g. paced out or from a site plan).
    With it, speeds are in km/h and distances in metres."""

    image: Annotated[PointList, Field(min_length=4)]
    world: Annotated[PointList, Field(min_length=4)]
    max_error_m: Annotated[float, Field(gt=0)] = 0.5  # a point this far off its own position: a typo

    @model_validator(mode="after")
    def _fits(self) -> GroundSection:
        if len(self.image) != len(self.world):
            raise KeyProblem(("world",), f"{len(self.world)} world points for {len(self.image)} image points")
        try:
            fit = self.plane()
        except ValueError as exc:
            raise KeyProblem(("image",), str(exc)) from None
        if fit.error_m > self.max_error_m:
            raise KeyProblem(
                ("world",),
                f"the points do not lie on one plane: one is {fit.error_m:.2f} m off (more than "
                f"max_error_m {self.max_error_m}); check their order and values",
            )
        return self

    def plane(self):
        from kuzet.edge.events.geometry import Ground

        return Ground(self.image, self.world)


class ScheduleSection(Section):
    """When a rule is armed, in local time. ``start`` after ``end`` spans midnight (22:00-06:00)."""

    days: list[Weekday] = list(WEEKDAYS)
    start: time = time(0, 0)
    end: time = time(23, 59, 59)
    utc_offset_h: Annotated[float, Field(ge=-12, le=14)] = 5.0  # Pavlodar and Kostanay

    def active(self, moment: datetime) -> bool:
        local = moment.astimezone(timezone(timedelta(hours=self.utc_offset_h)))
        now, day = local.time(), local.weekday()
        if self.start <= self.end:
            return WEEKDAYS[day] in self.days and self.start <= now <= self.end
        # Overnight: the part after midnight belongs to the day the window started.
        if now >= self.start:
            return WEEKDAYS[day] in self.days
        return now <= self.end and WEEKDAYS[(day - 1) % 7] in self.days


class RuleSection(Section):
    name: Annotated[str, Field(min_length=1, max_length=60)]
    type: Literal[
        "zone_enter",
        "zone_exit",
        "loitering",
        "line_crossing",
        "crowd",
        "no_stopping",
        "object_left",
        "running",
        "chase",
        "repeated_stops",
        "littering",
        "person_down",
    ]
    zone: str | None = None  # zone rules; running / object_left may be limited to a zone
    line: str | None = None  # line_crossing
    labels: list[str] | None = None  # default by type: persons, vehicles for no_stopping, carried objects
    severity: Severity | None = None
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.0
    schedule: ScheduleSection | None = None
    dwell_s: Annotated[float, Field(gt=0)] = 30.0  # loitering
    direction: Literal["any", "left_to_right", "right_to_left"] = "any"  # line_crossing
    max_count: Annotated[int, Field(ge=0)] = 5  # crowd: more than this many
    # The incident lifecycle (lifecycle.py); unset: LIFECYCLE_DEFAULTS for the rule's type.
    min_duration_s: Annotated[float, Field(ge=0)] | None = (
        None  # the condition holds this long before an event
    )
    grace_s: Annotated[float, Field(ge=0)] | None = None  # gone this long before the event closes
    cooldown_s: Annotated[float, Field(ge=0)] | None = None  # after a close, no new event for this long
    cooldown_scope: Literal["subject", "zone"] = "subject"  # the same person (or zone), or anyone in the zone
    reid_s: Annotated[float, Field(ge=0)] | None = None  # a track born this soon after one ended ...
    reid_distance: Annotated[float, Field(ge=0)] | None = (
        None  # ... this near (box heights) is the same person
    )
    hysteresis: Annotated[int, Field(ge=0)] = (
        1  # crowd: opens above max_count, stays while above max_count - this
    )
    stopped_s: Annotated[float, Field(gt=0)] = 10.0  # no_stopping
    stationary_s: Annotated[float, Field(gt=0)] = 10.0  # object_left, littering: staying put this long
    owner_window_s: Annotated[float, Field(gt=0)] = (
        10.0  # object_left, littering: a person there this recently
    )
    min_area_px: Annotated[float, Field(gt=0)] = 150.0  # littering: an object at least this big (native px)
    min_area_m2: Annotated[float, Field(gt=0)] | None = None  # littering, with [ground]: m^2 instead
    down_s: Annotated[float, Field(gt=0)] = 10.0  # person_down: lying still this long
    min_speed: Annotated[float, Field(gt=0)] = 1.8  # running: box heights per second
    min_speed_kmh: Annotated[float, Field(gt=0)] | None = None  # running, with [ground]: km/h instead
    linger_s: Annotated[float, Field(gt=0)] = 3.0  # momentary events (exit, crossing) stay open this long

    chase_gap_s: Annotated[float, Field(gt=0)] = (
        4.0  # chase: the follower is where the leader was this recently
    )
    chase_angle_deg: Annotated[float, Field(gt=0, le=90)] = (
        30.0  # chase: their headings differ by at most this
    )

    stops: Annotated[int, Field(ge=2)] = 3  # repeated_stops: this many brief stops ...
    stop_min_s: Annotated[float, Field(gt=0)] = 1.5  # ... each standing at least this long ...
    stop_max_s: Annotated[float, Field(gt=0)] = 30.0  # ... and at most this (longer is loitering) ...
    stop_spacing: Annotated[float, Field(gt=0)] = (
        0.4  # ... each this many box heights (~0.7 m) from the others ...
    )
    stops_window_s: Annotated[float, Field(gt=0)] = 300.0  # ... within this long

    @property
    def event_type(self) -> EventType:
        return WIRE_TYPE.get(self.type, self.type)

    @property
    def resolved_severity(self) -> str:
        return self.severity or DEFAULT_SEVERITY[self.type]

    def policy(self, lifecycle: bool = True) -> Policy:
        """The lifecycle's settings for this rule; ``lifecycle=False``: raw conditions are events (for
        comparison), keeping only min_duration_s."""
        d = LIFECYCLE_DEFAULTS[self.type]
        min_duration = d[0] if self.min_duration_s is None else self.min_duration_s
        if not lifecycle:
            return Policy(min_duration_s=min_duration)
        return Policy(
            min_duration_s=min_duration,
            grace_s=d[1] if self.grace_s is None else self.grace_s,
            cooldown_s=d[2] if self.cooldown_s is None else self.cooldown_s,
            cooldown_scope=self.cooldown_scope,
            reid_s=d[3] if self.reid_s is None else self.reid_s,
            reid_distance=d[4] if self.reid_distance is None else self.reid_distance,
        )

    @property
    def resolved_labels(self) -> tuple[str, ...]:
        if self.labels is not None:
            return tuple(self.labels)
        if self.type == "no_stopping":
            return VEHICLES
        if self.type == "object_left":
            return CARRIED
        return PERSON

    @model_validator(mode="after")
    def _has_what_it_needs(self) -> RuleSection:
        if (
            self.type in ("zone_enter", "zone_exit", "loitering", "crowd", "no_stopping", "repeated_stops")
            and not self.zone
        ):
            raise KeyProblem(("zone",), f"a {self.type} rule needs a zone: the name of one of the [[zones]]")
        if self.type == "line_crossing" and not self.line:
            raise KeyProblem(("line",), "a line_crossing rule needs a line: the name of one of the [[lines]]")
        return self


def _one_of(kind: str, names: list[str]) -> str:
    return (
        f"expected one of the [[{kind}]] names: {', '.join(map(repr, names))}"
        if names
        else f"no [[{kind}]] are defined"
    )


def check_references(zones: list[ZoneSection], lines: list[LineSection], rules: list[RuleSection]) -> None:
    """Raise KeyProblem at the key (``rules.2.zone``, ``zones.1.name``) that names a zone or line that is not
    defined, or a name used twice. Keys are relative to the camera configuration."""
    for kind, items in (("zones", zones), ("lines", lines), ("rules", rules)):
        seen: set[str] = set()
        for index, item in enumerate(items):
            if item.name in seen:
                raise KeyProblem(
                    (kind, index, "name"), f"{item.name!r} is used twice; expected a unique name"
                )
            seen.add(item.name)
    zone_names = [z.name for z in zones]
    line_names = [line.name for line in lines]
    for index, rule in enumerate(rules):
        if rule.zone and rule.zone not in zone_names:
            raise KeyProblem(
                ("rules", index, "zone"), f"no zone named {rule.zone!r}; {_one_of('zones', zone_names)}"
            )
        if rule.line and rule.line not in line_names:
            raise KeyProblem(
                ("rules", index, "line"), f"no line named {rule.line!r}; {_one_of('lines', line_names)}"
            )
