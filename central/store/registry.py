"""Which devices central knows: technicians register a device when they flash it and revoke it when it is
lost or replaced. (Its status, online state and last-seen time are written by ingest.)

A revoked device stays revoked: ingest refuses what it sends and routing never picks it. Registering it again
is refused (``DeviceRevoked``); bringing it back is a deliberate, audited ``reinstate`` with a reason (a badge
that was reported stolen and turned up again), after which it can be re-registered as usual."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Literal

from flask_babel import gettext
from pydantic import Field

from kuzet.central.auth import audit
from kuzet.central.store import portable
from kuzet.shared import timeutil
from kuzet.shared.config import DeviceId, Name, Section


class Registration(Section):
    """The body of ``POST /api/v1/devices``; unknown keys are refused."""

    device_id: DeviceId
    kind: Literal["camera", "badge"]
    name: Annotated[str, Field(max_length=200)] = ""
    site: Name
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    # A camera's view, for the map: where it looks (degrees from north), how wide, and how far it sees usefully.
    heading_deg: Annotated[float, Field(ge=0, lt=360)] | None = None
    fov_deg: Annotated[float, Field(gt=0, le=360)] | None = None
    view_m: Annotated[float, Field(gt=0, le=5000)] | None = None


class DeviceRevoked(ValueError):
    """Registering a revoked device: it must be reinstated first, on purpose and with a reason."""

    def __init__(self, device_id: str, revoked_at: str):
        super().__init__(
            f"device {device_id} was revoked at {revoked_at}; reinstate it first "
            f"(POST /api/v1/devices/{device_id}/reinstate with a reason, or "
            f"'kuzet central reinstate-device {device_id} --reason ...')"
        )
        self.device_id = device_id
        self.revoked_at = revoked_at


def register(db, registration: Registration, actor: str) -> bool:
    """Register the device, or re-register it (a re-flash: new name or place). True if new.

    Raises DeviceRevoked for a revoked device: re-registering never quietly un-revokes one."""
    now = timeutil.now_wire()
    record = registration.model_dump()
    with audit.transaction(db):
        existing = portable.execute(
            db, "SELECT revoked_at FROM devices WHERE device_id = ?", [registration.device_id]
        ).fetchone()
        if existing is not None and existing[0]:
            raise DeviceRevoked(registration.device_id, existing[0])
        portable.execute(
            db,
            "INSERT INTO devices (device_id, kind, name, site, lat, lon, heading_deg, fov_deg, view_m,"
            " registered_at, online)"
            " VALUES (:device_id, :kind, :name, :site, :lat, :lon, :heading_deg, :fov_deg, :view_m, :now, 0)"
            " ON CONFLICT(device_id) DO UPDATE SET kind = excluded.kind, name = excluded.name,"
            " site = excluded.site, lat = excluded.lat, lon = excluded.lon, heading_deg = excluded.heading_deg,"
            " fov_deg = excluded.fov_deg, view_m = excluded.view_m, registered_at = excluded.registered_at",
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


def revoke(db, device_id: str, actor: str, reason: str = "") -> bool:
    """Mark the device revoked: ingest then dead-letters what it sends and routing no longer sends it.
    False if there is no such device."""
    with audit.transaction(db):
        cursor = portable.execute(
            db,
            "UPDATE devices SET revoked_at = ?, online = 0 WHERE device_id = ?",
            [timeutil.now_wire(), device_id],
        )
        if cursor.rowcount:
            audit.append(db, actor, "device.revoke", f"device:{device_id}", {"reason": reason})
    return bool(cursor.rowcount)


def reinstate(db, device_id: str, actor: str, reason: str) -> bool:
    """Lift a revocation, on purpose: ``reason`` is required and goes into the audit log with the time the
    device had been revoked. False if there is no such device; ValueError if it is not revoked or no reason
    is given. (A device whose certificate was revoked also needs a new certificate to connect again.)"""
    reason = reason.strip()
    if not reason:
        raise ValueError("say why the device is reinstated (it goes into the audit log)")
    with audit.transaction(db):
        row = portable.execute(
            db, "SELECT revoked_at FROM devices WHERE device_id = ?", [device_id]
        ).fetchone()
        if row is None:
            return False
        if not row[0]:
            raise ValueError(f"device {device_id} is not revoked")
        portable.execute(db, "UPDATE devices SET revoked_at = NULL WHERE device_id = ?", [device_id])
        audit.append(
            db, actor, "device.reinstate", f"device:{device_id}", {"reason": reason, "revoked_at": row[0]}
        )
    return True


def reinstate_command(central, args) -> int:
    """``kuzet central reinstate-device DEVICE --reason TEXT``."""
    try:
        found = reinstate(central.db(), args.device, f"cli:{getpass.getuser()}", args.reason)
    except ValueError as exc:
        print(f"reinstate-device: {exc}", file=sys.stderr)
        return 2
    if not found:
        print(gettext("reinstate-device: no device %(device)s", device=args.device), file=sys.stderr)
        return 1
    print(
        gettext(
            "device %(device)s reinstated; it can be registered again (and needs a valid certificate)",
            device=args.device,
        )
    )
    return 0
