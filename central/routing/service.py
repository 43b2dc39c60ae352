"""Routing: which events need a patrol, which unit goes, and what happens when it does not answer.

``RoutingService`` is the running part: it starts the worker (``central.routing.worker``), takes device
messages from ingest's hooks, and answers operator requests (confirm, assign, cancel, reassign, intercept,
edit a unit, close an event, revoke a device), each in one transaction of the worker. Routing decides through
``planner`` (who goes) and ``lifecycle`` (which state change is allowed and what follows from it); it stores
through ``repository``; ``dispatcher`` carries the decisions out. The page, the API and ingest's hook reach
the state-changing methods through ``central.operations``, the one door.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from kuzet.central.alerts import Text, english, say
from kuzet.central.auth import audit
from kuzet.central.context import Central
from kuzet.central.operations import ROUTED_KINDS, routing_takes
from kuzet.central.routing import board, geo, planner
from kuzet.central.routing import lifecycle as lc
from kuzet.central.routing.dispatcher import CATCH_UP, SERVE_WAITING, SYSTEM, Dispatcher
from kuzet.central.routing.planner import Incident
from kuzet.central.routing.units import Unit
from kuzet.central.routing.worker import Settle
from kuzet.central.store import registry, workflow
from kuzet.shared import timeutil
from kuzet.shared.messages import Envelope

log = logging.getLogger(__name__)

HOOKED_KINDS = ROUTED_KINDS  # what a RoutingService started with ``ingest`` hooks by itself (bench, tests)

__all__ = ["HOOKED_KINDS", "SYSTEM", "Incident", "RoutingError", "RoutingService"]


class RoutingError(Exception):
    """An operator request that cannot be done; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


class RoutingService(Dispatcher):
    def __init__(self, central: Central, ingest=None):
        super().__init__(central)
        self.ingest = ingest

    # --- lifecycle of the part ------------------------------------------------------------------------

    def start(self) -> RoutingService:
        self._reload_deadlines()
        self._reload_waiting()
        if self.ingest is not None:
            for kind in HOOKED_KINDS:
                self.ingest.on(kind, self.handle)
        # Revocations and closings made while routing was not running: stood down first thing.
        self.worker.submit("", CATCH_UP)
        self.worker.start()
        return self

    def stop(self) -> None:
        """Apply what ingest already handed over, then stop (call after ingest.stop())."""
        self.worker.stop()

    def _reload_deadlines(self) -> None:
        """After a restart, dispatches still waiting for an acknowledgement (or proposals waiting for an
        operator's confirmation) keep their deadline."""
        now = timeutil.utc_now()
        for state in (lc.SENT, lc.PROPOSED):  # a sent one waits on its badge's answer
            for dispatch_id, deadline_at in self.repository.deadlines((state,)):
                left = (timeutil.from_wire(deadline_at) - now).total_seconds()
                self.worker.deadlines.set(dispatch_id, left, on_device=state == lc.SENT)

    def _reload_waiting(self) -> None:
        """After a restart, events that needed a patrol and never got one wait for a unit again."""
        oldest = timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=self.config.waiting_max_age_s))
        for event_id, event_type, severity in self.repository.new_events_never_dispatched(oldest):
            if self._needs_patrol(event_type, severity) and (incident := self._incident(event_id)):
                self._waiting[event_id] = incident
                self._seen[event_id] = None
        if self._waiting:
            log.info("routing: %d event(s) from before the restart wait for a unit", len(self._waiting))
            self.worker.submit("", SERVE_WAITING)  # the worker tries them first thing

    def _catch_up(self) -> None:
        """Dispatches still under way to a revoked badge or to a closed event, where the revocation or the
        closing happened while routing was not running: dealt with as if routing had been asked."""
        rows = self.repository.left_behind()
        for device in dict.fromkeys(r["unit"] for r in rows if self.units.is_revoked(r["unit"])):
            self._withdraw_revoked(device, SYSTEM, "")
        for event_id in dict.fromkeys(r["event_id"] for r in rows if r["event_id"]):
            status, note = self.repository.event_status(event_id)
            if status == "closed":
                self._stand_down_event(event_id, SYSTEM, say("note_event_closed", note=(note or "")[:200]))

    # --- the way in -----------------------------------------------------------------------------------

    def handle(self, message: Envelope, site: str) -> None:
        """Queue one decoded message from a device: the ingest hook (called after ingest's commit)."""
        if routing_takes(message):
            self.worker.submit(site, message)

    def settle(self, settle: Settle) -> None:
        """Queue ``settle`` behind what was handed over so far: the routing inbox deletes its rows in the
        transaction that applies them (``central.inbox``)."""
        self.worker.settle(settle)

    def behind(self, seconds: float) -> None:
        """How late routing applies what devices send now (``central.inbox``): a badge's acknowledgement
        deadline waits that much longer (``Deadlines``)."""
        self.worker.deadlines.behind(seconds)

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far has been applied; for tests and orderly shutdown."""
        return self.worker.drain(timeout_s)

    # --- operator actions (through central.operations) ------------------------------------------------

    def recommend(self, event_id: str, limit: int = 5) -> list[dict]:
        with self.worker.lock:
            incident = self._require_incident(event_id)
            return [
                {**c.unit.as_dict(), "travel_m": round(c.travel_m, 1), "straight_m": round(c.straight_m, 1)}
                for c in self._candidates(incident, limit=limit, skip_tried=False)
            ]

    def _require_incident(self, event_id: str) -> Incident:
        incident = self._incident(event_id)
        if incident is None:
            raise RoutingError(f"event {event_id} is unknown or has no position", 404)
        if self._event_closed(event_id):  # nobody is sent there (closing stood them down)
            raise RoutingError(f"event {event_id} is closed")
        return incident

    def _require_dispatch(self, dispatch_id: str) -> dict:
        row = self.repository.get_dispatch(dispatch_id)
        if row is None:
            raise RoutingError(f"dispatch {dispatch_id} does not exist", 404)
        return row

    def _require_step(self, row: dict, trigger: str, why: str) -> None:
        if not lc.allowed(row["state"], trigger):
            raise RoutingError(why)

    def confirm(self, dispatch_id: str, actor: str) -> dict:
        with self.worker.transaction():
            row = self._require_dispatch(dispatch_id)
            self._require_step(
                row, lc.CONFIRM, f"dispatch {dispatch_id} is {row['state']}, not awaiting confirmation"
            )
            unit = self.units.get(row["unit"])
            if unit is None or not unit.free() or self.units.is_revoked(unit.device_id):
                raise RoutingError(f"{row['unit']} is no longer free: recommend again or assign another unit")
            incident = self._require_incident(row["event_id"])
            self._log(row, "confirmed", actor)
            self._send(incident, unit, row["distance_m"], "nearest", row["attempt"], actor, row=row)
        return self.dispatch(dispatch_id)

    def assign(self, event_id: str, device: str, actor: str, note: str = "") -> dict:
        """Manual assignment: the operator sends this unit, whatever routing recommended."""
        with self.worker.transaction():
            incident = self._require_incident(event_id)
            unit = self._require_assignable(device)
            for row in self.repository.find_dispatches(states=(lc.PROPOSED,), event_id=event_id):
                self._move(row, lc.SUPERSEDE, actor, say("note_superseded_manual"))
            self._waiting.pop(event_id, None)
            distance = geo.travel_m(incident.lat, incident.lon, unit.lat, unit.lon, self.config.detour_factor)
            if note:
                incident.description = f"{incident.description}\n{note}".strip()
            attempt = len(incident.tried) + 1
            dispatch_id = self._send(incident, unit, distance, "manual", attempt, actor)
        return self.dispatch(dispatch_id)

    def send_nearest(self, event_id: str, actor: str) -> dict:
        """The operator sends the nearest free unit now: the click is the confirmation. A proposal still open
        for the event is superseded; the dispatch escalates like routing's own if nobody acknowledges."""
        with self.worker.transaction():
            incident = self._require_incident(event_id)
            found = self._candidates(incident, limit=1, skip_tried=False)
            if not found:
                raise RoutingError("no free unit with a recent position is within reach")
            for row in self.repository.find_dispatches(states=(lc.PROPOSED,), event_id=event_id):
                self._move(row, lc.SUPERSEDE, actor, say("note_superseded_nearest"))
            self._waiting.pop(event_id, None)
            best = found[0]
            attempt = len(incident.tried) + 1
            dispatch_id = self._send(incident, best.unit, best.travel_m, "nearest", attempt, actor)
        return self.dispatch(dispatch_id)

    def divert(self, device: str, event_id: str, actor: str, reason: str = "") -> dict:
        """Take a busy unit off its dispatch and send it to a more urgent event (lifecycle DIVERT). The event
        it leaves waits again for the next free unit (REQUEUE); the badge is told its old dispatch is no longer
        its own, and the operators are alerted. The new dispatch is returned."""
        with self.worker.transaction():
            incident = self._require_incident(event_id)
            unit = self._require_on_air(device)
            if unit.current_dispatch is None:
                raise RoutingError(f"unit {device} is not on a dispatch: send it instead")
            row = self._require_dispatch(unit.current_dispatch)
            why = f"dispatch {row['dispatch_id']} is {row['state']}: only a unit under way can be diverted"
            self._require_step(row, lc.DIVERT, why)
            if row["event_id"] == event_id:
                raise RoutingError(f"unit {device} is already on this event")
            left = self._incident(row["event_id"])
            if left is None:
                raise RoutingError(
                    f"unit {device} is intercepting at a place, not on an event: cancel that first"
                )
            if not planner.outranks(incident.severity, left.severity):
                raise RoutingError(
                    f"the {incident.severity} event is not more urgent than the {left.severity} event "
                    f"{device} is on: only a more urgent event may take a busy unit"
                )
            why = reason or say(
                "note_diverted", severity=incident.severity, event_type=incident.event_type, event=event_id
            )
            step = self._move(row, lc.DIVERT, actor, why, reason=english(why)[:200])
            for proposal in self.repository.find_dispatches(states=(lc.PROPOSED,), event_id=event_id):
                self._move(proposal, lc.SUPERSEDE, actor, say("note_superseded_diverted", unit=device))
            self._waiting.pop(event_id, None)
            distance = geo.travel_m(incident.lat, incident.lon, unit.lat, unit.lon, self.config.detour_factor)
            dispatch_id = self._send(incident, unit, distance, "manual", len(incident.tried) + 1, actor)
            requeued = lc.REQUEUE in step.effects and self._requeue(row, left, actor)
            if lc.ALERT in step.effects:
                self._alert(
                    "warning",
                    say(
                        "diverted_requeued" if requeued else "diverted_others_stay",
                        unit=unit.callsign or device,
                        left_severity=left.severity,
                        left_type=left.event_type,
                        severity=incident.severity,
                        event_type=incident.event_type,
                    ),
                    left,
                    dispatch_id=row["dispatch_id"],
                )
        return self.dispatch(dispatch_id)

    def _requeue(self, row: dict, incident: Incident, actor: str) -> bool:
        """REQUEUE: the event a unit was diverted from waits for the next free unit, in its place by severity
        and age; one is sent at once if free. The diverted unit is not ruled out: it did not refuse. False
        where other units are still on the event (an intercept): it does not wait then."""
        event_id = row["event_id"]
        if self.repository.find_dispatches(states=lc.UNDER_WAY, event_id=event_id, limit=1):
            return False
        incident.tried.discard(row["unit"])
        detail = {"dispatch_id": row["dispatch_id"], "unit": row["unit"], "why": "diverted"}
        if workflow.returned_to_waiting(self.central.db(), event_id, actor, detail):
            self._out.show("event", {"event_id": event_id})
        self._waiting[event_id] = incident
        self._seen[event_id] = None
        self._serve_waiting()
        return True

    def _require_on_air(self, device: str) -> Unit:
        unit = self.units.get(device)
        if unit is None:
            raise RoutingError(f"unit {device} is unknown", 404)
        if self.units.is_revoked(device):
            raise RoutingError(f"unit {device} is revoked: it cannot be sent")
        if not unit.online:
            raise RoutingError(f"unit {device} is offline")
        if not unit.has_position():
            raise RoutingError(f"unit {device} has never reported a position")
        return unit

    def _require_assignable(self, device: str) -> Unit:
        unit = self._require_on_air(device)
        if unit.current_dispatch is not None:
            raise RoutingError(f"unit {device} is on dispatch {unit.current_dispatch}: cancel it first")
        return unit

    def cancel(self, dispatch_id: str, actor: str, reason: str) -> dict:
        """Operator override: stop a dispatch; the badge is told."""
        if not reason:
            raise RoutingError("say why the dispatch is cancelled", 400)
        with self.worker.transaction():
            row = self._require_dispatch(dispatch_id)
            self._require_step(row, lc.CANCEL, f"dispatch {dispatch_id} is already {row['state']}")
            self._stand_down(row, lc.CANCEL, actor, reason)
        return self.dispatch(dispatch_id)

    def reassign(self, dispatch_id: str, device: str, actor: str, reason: str) -> dict:
        """Operator override: take the dispatch from its unit and give the event to another."""
        with self.worker.lock:
            row = self._require_dispatch(dispatch_id)
            if not row["event_id"]:
                raise RoutingError("this dispatch has no event to reassign", 400)
            self._require_assignable(device)  # before cancelling, so a refused reassignment changes nothing
            self.cancel(dispatch_id, actor, reason or f"reassigned to {device}")
            return self.assign(row["event_id"], device, actor)

    def intercept(
        self,
        actor: str,
        *,
        event_id: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        direction_deg: float | None = None,
        radius_m: float | None = None,
        description: str = "",
        event_type: str = "manual",
        severity: str = "high",
    ) -> list[dict]:
        """Send every free unit within the radius, with the snapshot and the direction of travel."""
        with self.worker.transaction():
            incident = self._intercept_incident(event_id, lat, lon, event_type, severity)
            if direction_deg is not None:
                incident.direction_deg = float(direction_deg) % 360
            if description:
                incident.description = description
            sent = self._intercept(incident, radius_m or self.config.intercept_radius_m, actor)
            if not sent:
                raise RoutingError("no free unit within the radius")
            # A proposal still open for the event is moot: the operator has sent everyone in range.
            proposals = (
                self.repository.find_dispatches(states=(lc.PROPOSED,), event_id=event_id) if event_id else []
            )
            for proposal in proposals:
                self._move(proposal, lc.SUPERSEDE, actor, say("note_superseded_intercept"))
        return [self.dispatch(d) for d in sent]

    def intercept_preview(
        self,
        *,
        event_id: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        radius_m: float | None = None,
    ) -> dict:
        """Which units an intercept would send now (the free units within the radius): what the operator is
        asked to confirm before ``intercept``. Changes nothing."""
        with self.worker.lock:
            incident = self._intercept_incident(event_id, lat, lon, "manual", "high")
            radius = radius_m or self.config.intercept_radius_m
            chosen = planner.intercept(self._candidates(incident, skip_tried=False), radius)
        units = [
            {"device_id": c.unit.device_id, "callsign": c.unit.callsign, "straight_m": round(c.straight_m, 1)}
            for c in chosen
        ]
        return {"count": len(units), "radius_m": radius, "units": units}

    def _intercept_incident(
        self, event_id: str | None, lat: float | None, lon: float | None, event_type: str, severity: str
    ) -> Incident:
        if event_id is not None:
            return self._require_incident(event_id)
        if lat is not None and lon is not None:
            return Incident(None, self.central.config.central.site, event_type, severity, lat, lon)
        raise RoutingError("intercept needs an event_id or a lat/lon", 400)

    def edit_unit(
        self, device: str, actor: str, callsign: str | None, capabilities: list[str] | None
    ) -> dict:
        with self.worker.transaction() as db:
            if self.units.get(device) is None:
                raise RoutingError(f"unit {device} is unknown", 404)
            unit = self.units.edit(device, callsign, capabilities)
            self._unit_changed(unit)
            audit.append(db, actor, "unit.edit", device, {"callsign": callsign, "capabilities": capabilities})
        return unit.as_dict()

    def revoke(self, device: str, actor: str, reason: str = "") -> bool:
        """Revoke a device (``registry.revoke``) and, in the same transaction, take a badge off every dispatch
        it holds or is proposed for: each is cancelled (the badge is told, if it can still hear), and each event
        goes to the next unit as the routing rules say. False if there is no such device."""
        with self.worker.transaction() as db:
            if not registry.revoke(db, device, actor, reason):
                return False
            self._withdraw_revoked(device, actor, reason)
        return True

    def _withdraw_revoked(self, device: str, actor: str, reason: str) -> None:
        revoked = (
            say("device_revoked_because", device=device, reason=reason)
            if reason
            else say("device_revoked", device=device)
        )
        why = revoked.english
        unit = self.units.set_offline(device)  # it may no longer connect; the page should not show it free
        if unit is not None:
            self._unit_changed(unit)
        for row in self.repository.find_dispatches(states=lc.UNDER_WAY, unit=device):
            step = self._stand_down(row, lc.REVOKE, actor, why)
            if lc.ALERT in step.effects:
                self._alert(
                    "warning",
                    say("revoked_on_dispatch", why=revoked, dispatch=row["dispatch_id"]),
                    event_id=row["event_id"],
                    dispatch_id=row["dispatch_id"],
                    device=device,
                )
            if lc.REROUTE in step.effects:
                self._reroute(row)

    def _reroute(self, row: dict) -> None:
        """REROUTE: send the event of a dispatch taken from its unit to the next unit as its rule says, unless
        another unit is still on it (the rest of an intercept) or it is closed."""
        event_id = row["event_id"]
        if event_id is None:
            return  # an intercept sent to a place: the other units are still on it
        if self.repository.find_dispatches(states=lc.UNDER_WAY, event_id=event_id, limit=1):
            return
        if self._event_closed(event_id):
            return
        incident = self._incident(event_id)
        if incident is None:
            self._alert("warning", say("no_position_to_reroute"), event_id=event_id)
            return
        incident.tried.add(row["unit"])
        if row["mode"] == "intercept":
            self._intercept_or_alert(incident, row["radius_m"] or self.config.intercept_radius_m)
        elif not self._needs_patrol(incident.event_type, incident.severity):
            self._alert("warning", say("taken_off_event", unit=row["unit"]), incident)
        else:
            self._route(incident, attempt=row["attempt"] + 1, actor=SYSTEM)

    def close_event(self, event_id: str, actor: str, note: str) -> dict:
        """The operator closes the event (``workflow.close``) and, in the same transaction, every dispatch
        still under way to it is cancelled with the closing note as the reason: the badges are told."""
        with self.worker.transaction() as db:
            event = workflow.close(db, event_id, actor, note)
            self._stand_down_event(event_id, actor, say("note_event_closed_by", actor=actor, note=note[:200]))
        return event

    def _stand_down_event(self, event_id: str, actor: str, reason: Text) -> None:
        self._forget(event_id)
        for row in self.repository.find_dispatches(states=lc.UNDER_WAY, event_id=event_id):
            self._stand_down(row, lc.EVENT_CLOSED, actor, reason)

    # --- queries --------------------------------------------------------------------------------------

    def dispatch(self, dispatch_id: str) -> dict:
        row = self._require_dispatch(dispatch_id)
        row["log"] = self.repository.history(dispatch_id)
        return row

    def dispatches(
        self, state: str | None = None, event_id: str | None = None, limit: int = 200, with_log: bool = False
    ) -> list[dict]:
        rows = self.repository.find_dispatches(
            states=(state,) if state else None, event_id=event_id or None, limit=limit
        )
        if with_log:
            for row in rows:
                row["log"] = self.repository.history(row["dispatch_id"])
        return rows

    def unit_board(self, event_id: str | None = None) -> dict:
        """Every unit with its status and current incident (``central.routing.board``), and with
        ``event_id``: each unit's distance to it and the nearest free unit."""
        with self.worker.lock:
            selected = self._require_incident(event_id) if event_id else None
            held = {d["unit"]: d for d in self.repository.find_dispatches(states=lc.ACTIVE, limit=10_000)}
            events = {}
            for dispatch in held.values():
                if dispatch["event_id"] and dispatch["event_id"] not in events:
                    events[dispatch["event_id"]] = (
                        self.repository.event_for_incident(dispatch["event_id"]) or {}
                    )
            rows = board.rows(
                self.units.all(), self.units.revoked(), held, events, selected, self.config.detour_factor
            )
            nearest = self._candidates(selected, limit=1, skip_tried=False) if selected else []
        return {
            "event_id": event_id,
            "units": rows,
            "nearest": nearest[0].unit.device_id if nearest else None,
            "waiting": list(self._waiting),
        }

    def waiting(self) -> list[str]:
        with self.worker.lock:
            return list(self._waiting)
