"""Patrol units as routing sees them: where each badge is, its duty status, whether it is online, and what
it is busy with. Kept in memory for fast nearest-unit queries and written through to the ``units`` table so
that the page, the API and a restarted central see the same thing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import sqlite_utils

from kuzet.central.routing import geo
from kuzet.shared import timeutil
from kuzet.shared.messages import Availability, Location, Status


@dataclass
class Unit:
    device_id: str
    site: str = ""
    callsign: str = ""
    lat: float | None = None
    lon: float | None = None
    duty: str = "off_duty"
    online: bool = False
    position_at: str | None = None
    current_dispatch: str | None = None
    capabilities: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        # By hand: dataclasses.asdict deep-copies, and this runs on every unit change.
        return {**self.__dict__, "capabilities": list(self.capabilities)}

    def copy(self) -> Unit:
        return replace(self, capabilities=list(self.capabilities))

    def has_position(self) -> bool:
        return self.lat is not None and self.lon is not None

    def free(self) -> bool:
        """Online, on duty as available and not holding a dispatch."""
        return self.online and self.duty == "available" and self.current_dispatch is None


@dataclass(frozen=True)
class Candidate:
    unit: Unit
    travel_m: float
    straight_m: float


class Units:
    def __init__(self, db: sqlite_utils.Database | Callable[[], sqlite_utils.Database]):
        # ``db``: a Database, or ``Central.db`` (this thread's connection): revocations are read from the
        # registry at every decision, on whichever thread (routing's worker, a web request) makes it.
        self._db = db if callable(db) else (lambda: db)
        self._lock = threading.Lock()
        self._units: dict[str, Unit] = {}
        for row in self._db()["units"].rows:
            self._units[row["device_id"]] = Unit(
                device_id=row["device_id"],
                site=row.get("site") or "",
                callsign=row.get("callsign") or "",
                lat=row["lat"],
                lon=row["lon"],
                duty=row["duty"] or "off_duty",
                online=bool(row["online"]),
                position_at=row["position_at"],
                current_dispatch=row["current_dispatch"],
                capabilities=json.loads(row["capabilities"] or "[]"),
            )

    # --- updates from the badges ----------------------------------------------------------------------

    def _get_or_add(self, site: str, device: str) -> Unit:
        unit = self._units.get(device)
        if unit is None:
            unit = self._units[device] = Unit(device_id=device, site=site, callsign=device)
        unit.site = site
        return unit

    def on_location(self, site: str, message: Location) -> Unit:
        with self._lock:
            unit = self._get_or_add(site, message.device)
            unit.lat, unit.lon = message.position.lat, message.position.lon
            unit.duty = message.duty
            unit.online = True
            unit.position_at = timeutil.to_wire(message.ts)
            return unit.copy()

    def on_status(self, site: str, message: Status) -> Unit | None:
        if message.kind != "badge":
            return None
        with self._lock:
            unit = self._get_or_add(site, message.device)
            if message.duty is not None:
                unit.duty = message.duty
            unit.online = True
            return unit.copy()

    def on_availability(self, site: str, message: Availability) -> Unit | None:
        with self._lock:
            unit = self._units.get(message.device)
            if unit is None:
                return None  # a camera, or a badge that never reported a position
            unit.online = message.state == "online"
            return unit.copy()

    # --- changes made by routing and operators --------------------------------------------------------

    def set_offline(self, device: str) -> Unit | None:
        """A revoked badge: whatever it last said, it is not on the air for routing."""
        with self._lock:
            unit = self._units.get(device)
            if unit is None:
                return None
            unit.online = False
            return unit.copy()

    def set_dispatch(self, device: str, dispatch_id: str | None) -> Unit | None:
        with self._lock:
            unit = self._units.get(device)
            if unit is None:
                return None
            unit.current_dispatch = dispatch_id
            return unit.copy()

    def edit(self, device: str, callsign: str | None = None, capabilities: list[str] | None = None) -> Unit:
        with self._lock:
            unit = self._units[device]
            if callsign is not None:
                unit.callsign = callsign
            if capabilities is not None:
                unit.capabilities = sorted(set(capabilities))
            return unit.copy()

    # --- queries --------------------------------------------------------------------------------------

    def revoked(self) -> set[str]:
        """Badges revoked in the device registry: never sent anywhere, whatever they last reported."""
        sql = "select device_id from devices where revoked_at is not null"
        return {row[0] for row in self._db().execute(sql)}

    def is_revoked(self, device: str) -> bool:
        sql = "select 1 from devices where device_id = ? and revoked_at is not null"
        return self._db().execute(sql, [device]).fetchone() is not None

    def get(self, device: str) -> Unit | None:
        with self._lock:
            unit = self._units.get(device)
            return unit.copy() if unit else None

    def all(self) -> list[Unit]:
        with self._lock:
            return [u.copy() for u in sorted(self._units.values(), key=lambda u: u.device_id)]

    def candidates(
        self,
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
        """Free units with a fresh position, not revoked, nearest first by estimated travel distance."""
        oldest = timeutil.to_wire((now or timeutil.utc_now()) - timedelta(seconds=max_age_s))
        needed = set(capabilities)
        exclude = set(exclude) | self.revoked()
        with self._lock:
            eligible = [
                unit
                for unit in self._units.values()
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
