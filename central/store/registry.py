"""Which devices central knows: technicians register a device when they flash it and revoke it when it is
lost or replaced. (Its status, online state and last-seen time are written by ingest.)"""

from __future__ import annotations

from typing import Annotated, Literal

import sqlite_utils
from pydantic import Field

from central.auth import audit
from shared import timeutil
from shared.config import Name, Section


class Registration(Section):
    """The body of ``POST /api/v1/devices``; unknown keys are refused."""

    device_id: Name
    kind: Literal["camera", "badge"]
    name: Annotated[str, Field(max_length=200)] = ""
    site: Name
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


def register(db: sqlite_utils.Database, registration: Registration, actor: str) -> bool:
    """Register the device, or re-register it (a re-flash: new name or place, un-revoked). True if new."""
    now = timeutil.now_wire()
    record = registration.model_dump()
    with audit.transaction(db):
        existing = db.execute(
            "SELECT 1 FROM devices WHERE device_id = ?", [registration.device_id]
        ).fetchone()
        db.execute(
            "INSERT INTO devices (device_id, kind, name, site, lat, lon, registered_at, online)"
            " VALUES (:device_id, :kind, :name, :site, :lat, :lon, :now, 0)"
            " ON CONFLICT(device_id) DO UPDATE SET kind = excluded.kind, name = excluded.name,"
            " site = excluded.site, lat = excluded.lat, lon = excluded.lon,"
            " registered_at = excluded.registered_at, revoked_at = NULL",
            {**record, "now": now},
        )
        audit.append(
            db,
            actor,
            "device.register" if existing is None else "device.reregister",
            f"device:{registration.device_id}",
            record,
        )
    return existing is None


def revoke(db: sqlite_utils.Database, device_id: str, actor: str, reason: str = "") -> bool:
    """Mark the device revoked (it is then shown as such and refused by whatever checks registration).
    False if there is no such device."""
    with audit.transaction(db):
        cursor = db.execute(
            "UPDATE devices SET revoked_at = ?, online = 0 WHERE device_id = ?",
            [timeutil.now_wire(), device_id],
        )
        if cursor.rowcount:
            audit.append(db, actor, "device.revoke", f"device:{device_id}", {"reason": reason})
    return bool(cursor.rowcount)
