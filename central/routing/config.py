"""The ``[routing]`` section of central's configuration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kuzet.shared.config import Section
from kuzet.shared.messages import EventType, Severity

Policy = Literal["auto", "confirm"]


class RuleSection(Section):
    """``[routing.rules.<event_type>]``: how one event type is routed, overriding the section's defaults."""

    min_severity: Severity | None = None
    policy: Policy | None = None
    # "nearest": one unit, escalating on timeout; "intercept": every available unit within the radius.
    mode: Literal["nearest", "intercept"] = "nearest"
    # A unit must have all of these (e.g. "vehicle", "medic") to be sent.
    capabilities: list[str] = []


class RoutingSection(Section):
    enabled: bool = True
    # "auto": dispatch the recommended unit at once; "confirm": an operator confirms the recommendation.
    policy: Policy = "auto"
    # Events of these types at or above min_severity need a patrol.
    event_types: list[str] = [
        "loitering",
        "object_left",
        "running",
        "chase",
        "person_down",
        "repeated_stops",
        "crowd",
        "line_crossing",
        "no_stopping",
        "panic",
        "manual",
    ]
    min_severity: Severity = "medium"
    ack_timeout_s: Annotated[int, Field(gt=0, le=3600)] = 60
    # Under the confirm policy: a proposal no operator confirmed within this raises a critical alert
    # ("alert"), or is sent anyway ("send": the proposed unit if still free, else the nearest free one).
    confirm_timeout_s: Annotated[int, Field(gt=0, le=3600)] = 120
    on_confirm_timeout: Literal["alert", "send"] = "alert"
    max_attempts: Annotated[int, Field(gt=0, le=20)] = 3
    intercept_radius_m: Annotated[float, Field(gt=0)] = 1500.0
    # Estimated travel = great-circle distance x this (streets are not straight lines).
    detour_factor: Annotated[float, Field(ge=1.0, le=5.0)] = 1.3
    # A unit whose last position is older than this is not recommended (its GPS or link is gone).
    position_max_age_s: Annotated[int, Field(gt=0)] = 300
    # Units farther than this are never recommended automatically; the operator is alerted instead.
    max_distance_m: Annotated[float, Field(gt=0)] = 20_000.0
    # Snapshots bigger than this are left out of the dispatch (the badge link is slow).
    snapshot_max_bytes: Annotated[int, Field(ge=0, le=700_000)] = 300_000
    # After a restart, events younger than this that never got a patrol wait for a unit again.
    waiting_max_age_s: Annotated[int, Field(gt=0)] = 3600
    rules: dict[EventType, RuleSection] = {}

    def rule(self, event_type: str) -> RuleSection:
        return self.rules.get(event_type, RuleSection())

    def policy_for(self, event_type: str) -> Policy:
        return self.rule(event_type).policy or self.policy

    def min_severity_for(self, event_type: str) -> str:
        return self.rule(event_type).min_severity or self.min_severity
