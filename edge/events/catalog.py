"""Every rule type by its configuration name (``type`` in a [[rules]] entry)."""

from __future__ import annotations

from kuzet.edge.events.config import LineSection, RuleSection, ZoneSection
from kuzet.edge.events.littering import Littering
from kuzet.edge.events.rules import (
    Chase,
    Crowd,
    LineCrossing,
    Loitering,
    NoStopping,
    ObjectLeft,
    PersonDown,
    RepeatedStops,
    Rule,
    Running,
    ZoneEnter,
    ZoneExit,
)

RULES: dict[str, type[Rule]] = {
    "zone_enter": ZoneEnter,
    "zone_exit": ZoneExit,
    "loitering": Loitering,
    "line_crossing": LineCrossing,
    "crowd": Crowd,
    "no_stopping": NoStopping,
    "running": Running,
    "object_left": ObjectLeft,
    "chase": Chase,
    "repeated_stops": RepeatedStops,
    "littering": Littering,
    "person_down": PersonDown,
}


def build(section: RuleSection, zones: dict[str, ZoneSection], lines: dict[str, LineSection]) -> Rule:
    return RULES[section.type](
        section,
        zones.get(section.zone) if section.zone else None,
        lines.get(section.line) if section.line else None,
    )
