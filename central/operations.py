"""The one door for every state change an operator, a script or a device makes in central.

The web page, the JSON API and the command line call ``Operations``; ingest's hooks hand device messages to
``on_device_message``; routing's own timer runs inside routing (``central.routing.worker``) and changes events
only through ``central.store.workflow``. Behind this door there is one writer per table: an event's status
is ``workflow``'s (with its checks), a device's revocation is ``registry``'s, dispatches and units are
routing's (``central.routing.repository``).

Where routing runs, closing an event cancels its dispatches and revoking a device stands its dispatches
down, each in the same transaction as the change itself; without routing there are no dispatches to stand
down and the change is the store's alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kuzet.central import alerts, commands
from kuzet.central.context import Central
from kuzet.central.store import queries, registry, workflow
from kuzet.central.watchlist import matches

if TYPE_CHECKING:
    from kuzet.central.routing.service import RoutingService
    from kuzet.shared.messages import Envelope


# What ingest hands to routing (through ``on_device_message``), after its commit.
ROUTED_KINDS = ("event", "location", "dispatch_state", "status", "availability", "evidence")


def routing_takes(message: Envelope) -> bool:
    """Whether routing has anything to do with a device's message: one of its kinds, and of heartbeats only a
    badge's (a unit's duty and presence). Cameras' heartbeats are most of a city's messages and change
    nothing for routing: across processes each would be kept, read, applied and deleted for nothing."""
    return message.type in ROUTED_KINDS and (message.type != "status" or message.kind == "badge")


class NotRunning(RuntimeError):
    """What was asked needs routing, and routing is not running on this central."""


@dataclass
class Operations:
    central: Central
    routing: RoutingService | None = None  # the running routing, where it is installed and started

    @property
    def routing_running(self) -> bool:
        return self.routing is not None

    def dispatching(self) -> RoutingService:
        """Routing, for the dispatch requests (confirm, assign, cancel, reassign, intercept, edit a unit)."""
        if self.routing is None:
            raise NotRunning("routing is not running on this central")
        return self.routing

    # --- events -----------------------------------------------------------------------------------------

    def _event_changed(self, event: dict) -> dict:
        self.central.hub.publish("event", {"event_id": event["event_id"]})
        return event

    def acknowledge_event(self, event_id: str, actor: str) -> dict:
        return self._event_changed(workflow.acknowledge(self.central.db(), event_id, actor))

    def assign_event(self, event_id: str, actor: str, assignee: str) -> dict:
        return self._event_changed(workflow.assign(self.central.db(), event_id, actor, assignee))

    def hold_event(self, event_id: str, actor: str, hold: bool) -> dict:
        return self._event_changed(workflow.set_hold(self.central.db(), event_id, actor, hold))

    def close_event(self, event_id: str, actor: str, note: str) -> dict:
        """Close an event with a note; every patrol still on its way there is stood down in the same
        transaction (the badges are told, with the note as the reason)."""
        if self.routing is not None:
            event = self.routing.close_event(event_id, actor, note)
        else:
            event = workflow.close(self.central.db(), event_id, actor, note)
        return self._event_changed(event)

    # --- devices ----------------------------------------------------------------------------------------

    def _device_changed(self, device_id: str) -> dict | None:
        device = queries.get_device(self.central.db(), device_id)
        if device is not None:
            self.central.hub.publish("device", device)
        return device

    def register_device(self, registration: registry.Registration, actor: str) -> tuple[dict, bool]:
        """Register (or re-register) a device: (the device, whether it is new). ``registry.DeviceRevoked``
        for a revoked one."""
        created = registry.register(self.central.db(), registration, actor)
        return self._device_changed(registration.device_id), created

    def revoke_device(self, device_id: str, actor: str, reason: str = "") -> dict | None:
        """Revoke a device; a badge is taken off its dispatches in the same transaction and their events go
        to the next unit. The device as it now is, or None if there is no such device."""
        if self.routing is not None:
            found = self.routing.revoke(device_id, actor, reason)
        else:
            found = registry.revoke(self.central.db(), device_id, actor, reason)
        return self._device_changed(device_id) if found else None

    def reinstate_device(self, device_id: str, actor: str, reason: str) -> dict | None:
        """Lift a revocation on purpose (``registry.reinstate``: ValueError without a reason or if the
        device is not revoked). None if there is no such device."""
        found = registry.reinstate(self.central.db(), device_id, actor, reason)
        return self._device_changed(device_id) if found else None

    # --- alerts and device commands ---------------------------------------------------------------------

    def acknowledge_alert(self, alert_id: int, actor: str) -> dict:
        """``alerts.AlertError`` if there is no such open alert; other pages drop it from their counters."""
        row = alerts.acknowledge(self.central.db(), alert_id, actor)
        self.central.hub.publish("alert", row)
        return row

    def send_command(self, device_id: str, name: str, args: dict, actor: str) -> dict:
        """Send a command to a device (``commands.send``; ``commands.CommandError`` says why not)."""
        row = commands.send(self.central, device_id, name, args, actor)
        self.central.hub.publish("command", row)
        return row

    # --- dispatches (routing's; NotRunning without it) ---------------------------------------------------

    def confirm_dispatch(self, dispatch_id: str, actor: str) -> dict:
        return self.dispatching().confirm(dispatch_id, actor)

    def assign_unit(self, event_id: str, device: str, actor: str, note: str = "") -> dict:
        return self.dispatching().assign(event_id, device, actor, note=note)

    def send_nearest(self, event_id: str, actor: str) -> dict:
        return self.dispatching().send_nearest(event_id, actor)

    def divert_unit(self, device: str, event_id: str, actor: str, reason: str = "") -> dict:
        return self.dispatching().divert(device, event_id, actor, reason)

    def cancel_dispatch(self, dispatch_id: str, actor: str, reason: str) -> dict:
        return self.dispatching().cancel(dispatch_id, actor, reason)

    def reassign_dispatch(self, dispatch_id: str, device: str, actor: str, reason: str) -> dict:
        return self.dispatching().reassign(dispatch_id, device, actor, reason)

    def intercept(self, actor: str, **where) -> list[dict]:
        return self.dispatching().intercept(actor, **where)

    def edit_unit(
        self, device: str, actor: str, callsign: str | None, capabilities: list[str] | None
    ) -> dict:
        return self.dispatching().edit_unit(device, actor, callsign, capabilities)

    # --- from the devices -------------------------------------------------------------------------------

    def on_device_message(self, message: Envelope, site: str) -> None:
        """Ingest's hook (called after ingest's commit): a watchlist match is audited as it arrives; what
        routing takes is queued for routing."""
        if getattr(message, "event_type", None) == "watchlist_match":
            matches.record_arrival(self.central.db(), message, site)
        if self.routing is not None:
            self.routing.handle(message, site)
