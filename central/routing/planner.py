"""Who goes: the nearest free unit by estimated travel distance, what to do when nobody answers, and which
units an intercept takes. Pure: given units, revocations, an incident and the configuration, it decides;
the dispatcher carries the decision out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from kuzet.central.routing import geo
from kuzet.central.routing.config import RoutingSection
from kuzet.central.routing.units import Unit
from kuzet.shared import timeutil
from kuzet.shared.messages import SEVERITY_RANK


@dataclass
class Incident:
    """What routing needs to know about an event to send someone there."""

    event_id: str | None
    site: str
    event_type: str
    severity: str
    lat: float
    lon: float
    description: str = ""
    direction_deg: float | None = None
    source_device: str | None = None  # a panicking badge is not sent to its own panic
    tried: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)

    @classmethod
    def of_event(cls, event: dict, site: str, lat: float, lon: float) -> Incident:
        """From an event's fields (a message's, or a row of the events table), at ``lat, lon``."""
        return cls(
            event_id=event["event_id"],
            site=site,
            event_type=event["event_type"],
            severity=event["severity"],
            lat=lat,
            lon=lon,
            description=event["description"] or event["label"] or "",
            direction_deg=direction(event["direction_deg"]),
            source_device=event["device"],
        )


@dataclass(frozen=True)
class Candidate:
    unit: Unit
    travel_m: float
    straight_m: float


@dataclass(frozen=True)
class Plan:
    """What to do for an incident: ``action`` is "give_up" (too many attempts), "wait" (no free unit),
    "propose" (an operator confirms ``best``) or "send" (``best`` goes now)."""

    action: str
    best: Candidate | None = None


def direction(value) -> float | None:
    """An event's ``direction_deg`` attribute as a bearing, or None."""
    return float(value) % 360 if isinstance(value, int | float) else None


def needs_patrol(config: RoutingSection, event_type: str, severity: str) -> bool:
    if not config.enabled or event_type not in config.event_types:
        return False
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[config.min_severity_for(event_type)]


def nearest(
    units: list[Unit],
    lat: float,
    lon: float,
    *,
    detour_factor: float,
    max_age_s: float,
    max_distance_m: float,
    capabilities: list[str] = (),
    exclude: set[str] = frozenset(),
    limit: int | None = None,
    now: datetime | None = None,
) -> list[Candidate]:
    """Free units with a fresh position, not excluded, nearest first by estimated travel distance."""
    oldest = timeutil.to_wire((now or timeutil.utc_now()) - timedelta(seconds=max_age_s))
    needed = set(capabilities)
    eligible = [
        unit
        for unit in units
        if unit.free()
        and unit.device_id not in exclude
        and unit.has_position()
        and (unit.position_at or "") >= oldest
        and needed.issubset(unit.capabilities)
    ]
    if not eligible:
        return []
    lats = np.fromiter((u.lat for u in eligible), float, len(eligible))
    lons = np.fromiter((u.lon for u in eligible), float, len(eligible))
    straight = geo.haversine_many_m(lat, lon, lats, lons)
    travel = straight * detour_factor
    found = []
    for index in np.argsort(travel, kind="stable")[:limit]:
        if travel[index] > max_distance_m:
            break
        found.append(Candidate(eligible[index].copy(), float(travel[index]), float(straight[index])))
    return found


def candidates(
    config: RoutingSection,
    units: list[Unit],
    revoked: set[str],
    incident: Incident,
    limit: int | None = None,
    skip_tried: bool = True,
) -> list[Candidate]:
    """Free units for the incident, nearest first; ``skip_tried``: not those already sent (escalation)."""
    return nearest(
        units,
        incident.lat,
        incident.lon,
        detour_factor=config.detour_factor,
        max_age_s=config.position_max_age_s,
        max_distance_m=config.max_distance_m,
        capabilities=config.rule(incident.event_type).capabilities,
        exclude=(incident.tried if skip_tried else set()) | {incident.source_device or ""} | revoked,
        limit=limit,
    )


def plan(
    config: RoutingSection, incident: Incident, attempt: int, found: list[Candidate], policy: str | None
) -> Plan:
    """``found``: the candidates (nearest first) for ``incident``; ``policy`` overrides the rule's."""
    if attempt > config.max_attempts:
        return Plan("give_up")
    if not found:
        return Plan("wait")
    if (policy or config.policy_for(incident.event_type)) == "confirm":
        return Plan("propose", found[0])
    return Plan("send", found[0])


def intercept(found: list[Candidate], radius_m: float) -> list[Candidate]:
    """Every free unit in range (straight line), including one sent before and free again."""
    return [c for c in found if c.straight_m <= radius_m]


def waiting_order(incidents) -> list[Incident]:
    """Events waiting for a unit: most severe first, then oldest."""
    return sorted(incidents, key=lambda i: (-SEVERITY_RANK[i.severity], i.since))


def outranks(severity: str, other: str) -> bool:
    """An incident of ``severity`` is more urgent than one of ``other``: a unit may be diverted to it."""
    return SEVERITY_RANK[severity] > SEVERITY_RANK[other]
