"""What a badge is sent for a dispatch: the event, where it is, how far, how long the officer has to
acknowledge, and the event's newest snapshot. Built from the dispatch's row, so that a dispatch sent again
(``lifecycle.SEND_AGAIN``) is the same task under the same id."""

from __future__ import annotations

from kuzet.central.routing.planner import Incident
from kuzet.shared.messages import Dispatch, to_base64


def dispatch(row: dict, incident: Incident, ack_deadline_s: int, snapshot: bytes | None) -> Dispatch:
    return Dispatch(
        device=row["unit"],
        dispatch_id=row["dispatch_id"],
        mode=row["mode"],
        event_id=incident.event_id,
        event_type=incident.event_type,
        severity=incident.severity,
        place={"lat": incident.lat, "lon": incident.lon},
        description=incident.description,
        distance_m=row["distance_m"],
        direction_deg=incident.direction_deg,
        ack_deadline_s=ack_deadline_s,
        snapshot=None if snapshot is None else to_base64(snapshot),
    )
