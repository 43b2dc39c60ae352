"""Patrol units as routing sees them: where each badge is, its duty status, whether it is online, and what
it is busy with. Kept in memory for fast nearest-unit queries and written through to the ``units`` table so
that the page, the API and a restarted central see the same thing (the writing is the dispatcher's, through
the repository). Choosing among them is ``central.routing.planner``'s."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from kuzet.shared import timeutil
from kuzet.shared.messages import Availability, Location, Status

if TYPE_CHECKING:
    from kuzet.central.routing.repository import RoutingRepository

T = TypeVar("T")
# What a badge says of itself, which changes its unit and nothing else: routing applies a run of them together.
UNIT_REPORTS = (Location, Status)


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
    status_since: str | None = None  # when online, duty or the dispatch held last changed: the unit board

    def status_key(self) -> tuple:
        return (self.online, self.duty, self.current_dispatch)

    def as_dict(self) -> dict:
        # By hand: dataclasses.asdict deep-copies, and this runs on every unit change.
        return {**self.__dict__, "capabilities": list(self.capabilities)}

    def copy(self) -> Unit:
        copied = copy.copy(self)  # not dataclasses.replace: it runs __init__ again, ten times the cost
        copied.capabilities = list(self.capabilities)
        return copied

    def has_position(self) -> bool:
        return self.lat is not None and self.lon is not None

    def free(self) -> bool:
        """Online, on duty as available and not holding a dispatch."""
        return self.online and self.duty == "available" and self.current_dispatch is None


def _since(unit: Unit, before: tuple) -> Unit:
    """A copy of ``unit``, its ``status_since`` moved on if its status changed (or was never known)."""
    if unit.status_key() != before or unit.status_since is None:
        unit.status_since = timeutil.now_wire()
    return unit.copy()


class Units:
    def __init__(self, repository: RoutingRepository):
        # Revocations are read from the registry (through the repository) at every decision, on whichever
        # thread (routing's worker, a web request) makes it.
        self._repository = repository
        self._lock = threading.Lock()
        self._units: dict[str, Unit] = {u.device_id: u for u in repository.load_units()}

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
            before = unit.status_key()
            unit.lat, unit.lon = message.position.lat, message.position.lon
            unit.duty = message.duty
            unit.online = True
            unit.position_at = timeutil.to_wire(message.ts)
            return _since(unit, before)

    def on_status(self, site: str, message: Status) -> Unit | None:
        if message.kind != "badge":
            return None
        with self._lock:
            unit = self._get_or_add(site, message.device)
            before = unit.status_key()
            if message.duty is not None:
                unit.duty = message.duty
            unit.online = True
            return _since(unit, before)

    def on_reports(self, reports: list[tuple[str, Location | Status]]) -> list[Unit]:
        """A run of positions and heartbeats (``(site, message)``, in order): each unit that changed, once, as it
        is after the run."""
        changed: dict[str, Unit] = {}
        for site, message in reports:
            on = self.on_location if isinstance(message, Location) else self.on_status
            if (unit := on(site, message)) is not None:
                changed[unit.device_id] = unit
        return list(changed.values())

    def on_availability(self, site: str, message: Availability) -> Unit | None:
        with self._lock:
            unit = self._units.get(message.device)
            if unit is None:
                return None  # a camera, or a badge that never reported a position
            before = unit.status_key()
            unit.online = message.state == "online"
            return _since(unit, before)

    # --- changes made by routing and operators --------------------------------------------------------

    def _set(self, device: str, **fields) -> Unit | None:
        with self._lock:
            unit = self._units.get(device)
            if unit is None:
                return None
            before = unit.status_key()
            for name, value in fields.items():
                setattr(unit, name, value)
            return _since(unit, before)

    def set_offline(self, device: str) -> Unit | None:
        """A revoked badge: whatever it last said, it is not on the air for routing."""
        return self._set(device, online=False)

    def set_dispatch(self, device: str, dispatch_id: str | None) -> Unit | None:
        return self._set(device, current_dispatch=dispatch_id)

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
        return self._repository.revoked()

    def is_revoked(self, device: str) -> bool:
        return self._repository.is_revoked(device)

    def get(self, device: str) -> Unit | None:
        with self._lock:
            unit = self._units.get(device)
            return unit.copy() if unit else None

    def all(self) -> list[Unit]:
        with self._lock:
            return [u.copy() for u in sorted(self._units.values(), key=lambda u: u.device_id)]

    def choose(self, select: Callable[[list[Unit]], T]) -> T:
        """``select`` over the units as they are now (in device order), under the lock: it must copy what it
        keeps (``planner.nearest`` copies the few it picks). At 1,500 badges, copying them all for every
        route (``all``) was most of routing's time."""
        with self._lock:
            return select(sorted(self._units.values(), key=lambda u: u.device_id))

    def any_free(self) -> bool:
        with self._lock:
            return any(u.free() for u in self._units.values())
