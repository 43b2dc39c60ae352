"""The unit board: every patrol, what it is doing and since when, which incident it is on, and how far it is
from the incident an operator has selected. Pure: units, the dispatches under way and the events they are for
go in, rows come out; the service gathers them (``RoutingService.unit_board``)."""

from __future__ import annotations

from kuzet.central.routing import geo
from kuzet.central.routing import lifecycle as lc
from kuzet.central.routing.planner import Incident, outranks
from kuzet.central.routing.units import Unit

# A unit's status on the board, as a key the page turns into words: a dispatch's own state while it holds one.
REVOKED, OFFLINE, OFF_DUTY, AVAILABLE, BUSY = "revoked", "offline", "off_duty", "available", "busy"
# The board's order: who can go first, then who is on the way or there, then who cannot be sent.
ORDER = (AVAILABLE, *lc.ACTIVE, BUSY, OFF_DUTY, OFFLINE, REVOKED)


def status(unit: Unit, dispatch: dict | None, revoked: bool) -> str:
    if revoked:
        return REVOKED
    if not unit.online:
        return OFFLINE
    if dispatch is not None:
        return dispatch["state"]
    if unit.duty == "off_duty":
        return OFF_DUTY
    return AVAILABLE if unit.free() else BUSY


def rows(
    units: list[Unit],
    revoked: set[str],
    dispatches: dict[str, dict],
    events: dict[str, dict],
    selected: Incident | None,
    detour_factor: float,
) -> list[dict]:
    """One row per unit. ``dispatches``: the dispatch each unit holds, by unit; ``events``: the events those
    dispatches are for, by id (event_type, severity, label); ``selected``: the incident distances are to."""
    board = []
    for unit in units:
        dispatch = dispatches.get(unit.device_id)
        key = status(unit, dispatch, unit.device_id in revoked)
        row = {
            **unit.as_dict(),
            "status": key,
            # A dispatch's own last change is when its unit's status (the dispatch's state) began.
            "status_since": dispatch["updated_at"] if dispatch else unit.status_since,
            "dispatch": None,
            "distance_m": None,
            "may_divert": False,
        }
        if dispatch is not None:
            event = events.get(dispatch["event_id"] or "") or {}
            row["dispatch"] = {
                "dispatch_id": dispatch["dispatch_id"],
                "state": dispatch["state"],
                "mode": dispatch["mode"],
                "event_id": dispatch["event_id"],
                "event_type": event.get("event_type"),
                "severity": event.get("severity"),
                "label": event.get("label"),
            }
        if selected is not None and unit.has_position():
            straight = geo.haversine_m(selected.lat, selected.lon, unit.lat, unit.lon)
            row["distance_m"] = round(straight * detour_factor, 1)
            row["may_divert"] = may_divert(key, dispatch, event_severity(events, dispatch), selected)
        board.append(row)
    far = float("inf")
    board.sort(
        key=lambda r: (ORDER.index(r["status"]), r["distance_m"] or far, r["callsign"] or r["device_id"])
    )
    return board


def event_severity(events: dict[str, dict], dispatch: dict | None) -> str | None:
    if dispatch is None or not dispatch["event_id"]:
        return None
    return (events.get(dispatch["event_id"]) or {}).get("severity")


def may_divert(key: str, dispatch: dict | None, severity: str | None, selected: Incident) -> bool:
    """A unit busy with a dispatch to a less urgent event may be taken off it for ``selected``."""
    if dispatch is None or key not in lc.ACTIVE or severity is None:
        return False
    if dispatch["event_id"] == selected.event_id:
        return False
    return outranks(selected.severity, severity)
