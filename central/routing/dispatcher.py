"""What routing decides by itself: which events need a patrol, sending and proposing units, a badge's
answers, deadlines, escalation, standing dispatches down; and carrying out the effects of each lifecycle
step (``central.routing.lifecycle``).

Every method here runs inside a transaction of the worker (``central.routing.worker``): rows go through
the repository, the event's status through ``central.store.workflow``, messages to badges and live updates
into the worker's outbox, which is delivered after the commit. Operator requests are in
``central.routing.service``, which builds on this class."""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from datetime import timedelta

from kuzet.central import alerts, commands
from kuzet.central.alerts import Text, english, say
from kuzet.central.auth import audit
from kuzet.central.context import Central
from kuzet.central.routing import lifecycle as lc
from kuzet.central.routing import outgoing, planner
from kuzet.central.routing.evidence import EvidenceLedger
from kuzet.central.routing.planner import Candidate, Incident
from kuzet.central.routing.units import UNIT_REPORTS, Unit, Units
from kuzet.central.routing.worker import Worker
from kuzet.central.store import dead_letters, portable, workflow
from kuzet.central.store.media import MediaStore
from kuzet.shared import ids, timeutil, topics
from kuzet.shared.messages import (
    Availability,
    Command,
    DispatchState,
    Envelope,
    Event,
    EvidenceSegment,
    Location,
    Status,
    encode,
)

log = logging.getLogger(__name__)

SYSTEM = "routing"  # the actor for what routing decides by itself
SERVE_WAITING = None  # queued message: try the events waiting for a unit
CATCH_UP = "catch-up"  # queued message: stand down dispatches left to revoked units or closed events


class Dispatcher:
    def __init__(self, central: Central):
        self.central = central
        self.config = central.config.routing
        self.repository = central.store.routing_repository()  # on each calling thread's connection
        self.media = MediaStore.for_central(central)  # snapshots sent with a dispatch
        self.units = Units(self.repository)
        self.worker = Worker(central, self._apply_batch, self._expire, self._will_route)
        self._incidents: dict[str, Incident] = {}  # event_id -> incident being routed
        self._waiting: dict[str, Incident] = {}  # event_id -> incident with no free unit yet
        self._seen: OrderedDict[str, None] = OrderedDict()  # event ids already considered
        self.evidence = EvidenceLedger()

    @property
    def _out(self):
        return self.worker.outbox

    def _apply_batch(self, work: list[tuple[str, Envelope | str | None]]) -> None:
        """The worker's batch, in order: each message alone, but a run of badges' reports together (the
        events routing passes over taken out first, so that the reports around them make one run)."""
        work = [(site, message) for site, message in work if not self._passes_over(message)]
        for reports, run in itertools.groupby(work, key=lambda item: isinstance(item[1], UNIT_REPORTS)):
            if reports:
                self._apply_reports(list(run))
            else:
                for site, message in run:
                    self._apply_alone(site, message)

    def _apply_reports(self, run: list[tuple[str, Location | Status]]) -> None:
        """Positions and heartbeats change only their units: the units' newest rows in one statement under one
        savepoint, not three round trips a report (at 1,500 badges, about all a leader on PostgreSQL could do)."""
        try:
            with portable.transaction(self.central.db()):
                changed = self.units.on_reports(run)
                self.repository.save_units(changed)
        except Exception:
            log.exception("routing: %d badge reports failed together; applying each alone", len(run))
            for site, message in run:
                self._apply_alone(site, message)
            return
        for unit in changed:
            self._unit_saved(unit)

    def _apply(self, site: str, message: Envelope | str | None) -> None:
        if not self._passes_over(message):
            self._apply_alone(site, message)

    def _passes_over(self, message: Envelope | str | None) -> bool:
        """Whether ``message`` is an event routing has nothing to do with (already considered, or nobody is sent
        to it: most of a city's events), decided in memory and marked considered. On PostgreSQL each would
        otherwise cost a savepoint's two round trips on routing's one thread."""
        if not isinstance(message, Event):
            return False
        routes = self._will_route(message)
        self._seen[message.event_id] = None
        if len(self._seen) > 100_000:
            self._seen.popitem(last=False)
        return not routes

    def _will_route(self, message: Envelope | str | None) -> bool:
        """Whether ``message`` is an event not yet considered that needs a patrol (nothing is marked). An
        event whose rule cannot be read is logged and routed nowhere, rather than stop routing's thread."""
        if not isinstance(message, Event) or message.event_id in self._seen:
            return False
        try:
            return self._needs_patrol(message.event_type, message.severity)
        except Exception:
            log.exception("routing: cannot tell whether %s needs a patrol", message.event_type)
            return False

    def _apply_alone(self, site: str, message: Envelope | str | None) -> None:
        if message is SERVE_WAITING:
            self._serve_waiting()
            return
        if message == CATCH_UP:
            self._catch_up()
            return
        try:
            # A savepoint per message: one that fails undoes only its own writes (on PostgreSQL a failed
            # statement would otherwise abort the whole batch's transaction).
            with portable.transaction(self.central.db()):
                self._apply_one(site, message)
        except Exception:
            log.exception("routing: failed on %s from %s", message.type, message.device)

    def _apply_one(self, site: str, message: Envelope) -> None:
        if isinstance(message, Event):
            self._on_event(site, message)
        elif isinstance(message, DispatchState):
            self._on_dispatch_state(site, message)
        elif isinstance(message, Location):
            self._unit_changed(self.units.on_location(site, message))
        elif isinstance(message, Status):
            self._unit_changed(self.units.on_status(site, message))
        elif isinstance(message, Availability):
            self._on_availability(site, message)
        elif isinstance(message, EvidenceSegment):
            self._on_evidence(message)

    # --- units ----------------------------------------------------------------------------------------

    def _unit_changed(self, unit: Unit | None) -> None:
        if unit is not None:
            self.repository.save_unit(unit)
            self._unit_saved(unit)

    def _unit_saved(self, unit: Unit) -> None:
        self._out.show("unit", unit.as_dict())
        if unit.free() and self._waiting:
            self._serve_waiting(changed=unit)

    def _on_availability(self, site: str, message: Availability) -> None:
        unit = self.units.on_availability(site, message)
        self._unit_changed(unit)
        if unit is not None and unit.online and unit.current_dispatch:
            self._send_again(unit)
        elif unit is not None and unit.current_dispatch:
            text = say(
                "unit_offline_on_dispatch",
                unit=unit.callsign or unit.device_id,
                dispatch=unit.current_dispatch,
            )
            condition = f"offline on dispatch {unit.current_dispatch}"
            self._device_warning(unit.device_id, condition, text, dispatch_id=unit.current_dispatch)

    def _send_again(self, unit: Unit) -> None:
        """SEND_AGAIN: a badge says it is online (it moved brokers, or its broker restarted without its session)
        before acknowledging its dispatch: it may never have got it, so it goes again, same id and deadline."""
        row = self.repository.get_dispatch(unit.current_dispatch or "")
        if row is None or not lc.allowed(row["state"], lc.BACK_ONLINE):
            return
        incident = self._incident(row["event_id"])
        left_s = int((timeutil.from_wire(row["deadline_at"]) - timeutil.utc_now()).total_seconds())
        if incident is None or left_s < 1:
            return  # nothing to describe the task by, or its deadline has come: escalation answers it
        message = outgoing.dispatch(row, incident, left_s, self._snapshot(incident.event_id))
        self._out.send(topics.down(unit.site, unit.device_id, "dispatch"), encode(message))
        self._log(row, lc.SENT, SYSTEM, say("note_sent_again", seconds=left_s))

    def _candidates(
        self, incident: Incident, limit: int | None = None, skip_tried: bool = True
    ) -> list[Candidate]:
        revoked = self.units.revoked()
        return self.units.choose(
            lambda units: planner.candidates(self.config, units, revoked, incident, limit, skip_tried)
        )

    # --- events ---------------------------------------------------------------------------------------

    def _needs_patrol(self, event_type: str, severity: str) -> bool:
        return planner.needs_patrol(self.config, event_type, severity)

    def _event_closed(self, event_id: str) -> bool:
        return self.repository.event_status(event_id)[0] == "closed"

    def _on_event(self, site: str, message: Event) -> None:
        """An event first seen that needs a patrol (``_passes_over`` let it through). The first message routing
        sees may be the "closed" one (ingest hands over each event's newest state in a batch; a replayed
        backlog brings both): routed all the same, unless too old to send anyone to."""
        age_s = (timeutil.utc_now() - message.started_at).total_seconds()
        if age_s > self.config.waiting_max_age_s:
            log.info("routing: %s started %.0f s ago; too old to send a patrol", message.event_id, age_s)
            return
        if self.repository.routed_or_closed(message.event_id):
            return  # already routed (central restarted, the edge re-sent the event) or an operator closed it
        position = message.location
        if position is None:
            camera = self.repository.device_position(message.device)
            if camera is None:
                text = say("event_without_position", event_type=message.event_type, device=message.device)
                self._device_warning(
                    message.device, "event without position", text, event_id=message.event_id
                )
                return
            lat, lon = camera
        else:
            lat, lon = position.lat, position.lon
        direction = {"direction_deg": message.attributes.get("direction_deg")}
        incident = Incident.of_event(message.model_dump() | direction, site, lat, lon)
        self._incidents[message.event_id] = incident
        if self.config.rule(message.event_type).mode == "intercept":
            self._intercept_or_alert(incident, self.config.intercept_radius_m)
        else:
            self._route(incident, attempt=1, actor=SYSTEM)

    def _incident(self, event_id: str | None) -> Incident | None:
        """The event as routing knows it, from memory or (after a restart, or for the API) the events table."""
        if event_id is None:
            return None
        incident = self._incidents.get(event_id)
        if incident is not None:
            return incident
        event = self.repository.event_for_incident(event_id)
        if event is None:
            return None
        lat, lon = event["lat"], event["lon"]
        if lat is None or lon is None:
            position = self.repository.device_position(event["device"])
            if position is None:
                return None
            lat, lon = position
        incident = Incident.of_event(
            {**event, "event_id": event_id}, event["site"] or self.central.config.central.site, lat, lon
        )
        incident.tried.update(self.repository.units_sent_to(event_id))
        self._incidents[event_id] = incident
        return incident

    def _forget(self, event_id: str) -> None:
        self._incidents.pop(event_id, None)
        self._waiting.pop(event_id, None)

    # --- choosing and sending -------------------------------------------------------------------------

    def _route(self, incident: Incident, attempt: int, actor: str, policy: str | None = None) -> str | None:
        """Send (or propose, under the confirm policy) the nearest free unit; queue the event if none."""
        found = [] if attempt > self.config.max_attempts else self._candidates(incident, limit=1)
        plan = planner.plan(self.config, incident, attempt, found, policy)
        if plan.action == "give_up":
            self._waiting.pop(incident.event_id or "", None)
            self._alert(
                "critical",
                say("nobody_took_event", count=attempt - 1, event_type=incident.event_type),
                incident,
            )
            return None
        if plan.action == "wait":
            if incident.event_id not in self._waiting:
                self._waiting[incident.event_id or ids.new_id()] = incident
                text = say("no_free_unit", severity=incident.severity, event_type=incident.event_type)
                self._alert("warning", text, incident)
            return None
        self._waiting.pop(incident.event_id or "", None)
        best = plan.best
        if plan.action == "propose":
            return self._propose(incident, best, attempt, actor)
        return self._send(incident, best.unit, best.travel_m, "nearest", attempt, actor)

    def _serve_waiting(self, changed: Unit | None = None) -> None:
        """Route the waiting incidents again; ``changed``: a unit that just changed (only what it could take)."""
        revoked = self.units.revoked() if changed is not None else set()
        for incident in planner.waiting_order(self._waiting.values()):
            now = self.units.get(changed.device_id) if changed is not None else None
            if not self.units.any_free() or (changed is not None and not (now and now.free())):
                return  # nobody free, or the changed unit was taken by an incident before this one
            if now is None or planner.candidates(self.config, [now], revoked, incident, limit=1):
                self._route(incident, attempt=len(incident.tried) + 1, actor=SYSTEM)

    def _intercept(self, incident: Incident, radius_m: float, actor: str) -> list[str]:
        chosen = planner.intercept(self._candidates(incident, skip_tried=False), radius_m)
        return [
            self._send(incident, c.unit, c.travel_m, "intercept", 1, actor, radius_m=radius_m) for c in chosen
        ]

    def _intercept_or_alert(self, incident: Incident, radius_m: float) -> None:
        if not self._intercept(incident, radius_m, SYSTEM):
            self._alert("critical", say("no_unit_to_intercept", event_type=incident.event_type), incident)

    def _snapshot(self, event_id: str | None) -> bytes | None:
        if event_id is None or self.config.snapshot_max_bytes == 0:
            return None
        return self.media.latest_snapshot(event_id, self.config.snapshot_max_bytes)

    def _insert(
        self, incident: Incident, unit: Unit, distance_m: float, mode: str, state: str, **more
    ) -> dict:
        now = timeutil.now_wire()
        base = dict(
            dispatch_id=ids.new_id(),
            event_id=incident.event_id,
            unit=unit.device_id,
            mode=mode,
            state=state,
            created_at=now,
            updated_at=now,
            deadline_at=None,
            distance_m=round(distance_m, 1),
            note=None,
            reason=None,
            site=unit.site,
            direction_deg=incident.direction_deg,
            lat=incident.lat,
            lon=incident.lon,
            radius_m=None,
        )
        row = {**base, **more}
        self.repository.insert_dispatch(row)
        return row

    def _propose(self, incident: Incident, best: Candidate, attempt: int, actor: str) -> str:
        row = self._insert(
            incident, best.unit, best.travel_m, "nearest", lc.PROPOSED, attempt=attempt, created_by=actor
        )
        timeout = self.config.confirm_timeout_s
        row["deadline_at"] = timeutil.to_wire(timeutil.utc_now() + timedelta(seconds=timeout))
        self.repository.update_dispatch(row["dispatch_id"], {"deadline_at": row["deadline_at"]})
        self.worker.deadlines.set(row["dispatch_id"], timeout)
        metres = round(best.travel_m)
        self._log(row, lc.PROPOSED, actor, say("note_proposed", unit=best.unit.device_id, metres=metres))
        name = best.unit.callsign or best.unit.device_id
        text = say("confirm_unit", unit=name, event_type=incident.event_type, metres=metres)
        self._alert("info", text, incident, dispatch_id=row["dispatch_id"])
        return row["dispatch_id"]

    def _send(
        self,
        incident: Incident,
        unit: Unit,
        distance_m: float,
        mode: str,
        attempt: int,
        actor: str,
        row: dict | None = None,
        radius_m: float | None = None,
    ) -> str:
        """Carry out SEND: record the dispatch as sent, start its deadline, send it, mark the unit busy."""
        timeout = self.config.ack_timeout_s
        deadline = timeutil.to_wire(timeutil.utc_now() + timedelta(seconds=timeout))
        if row is None:  # a new dispatch is written once, already sent (one round trip, not two)
            more = dict(attempt=attempt, created_by=actor, radius_m=radius_m, deadline_at=deadline)
            row = self._insert(incident, unit, distance_m, mode, lc.SENT, **more)
        else:  # a confirmed proposal
            changes = {"state": lc.SENT, "deadline_at": deadline, "updated_at": timeutil.now_wire()}
            row.update(changes)
            self.repository.update_dispatch(row["dispatch_id"], changes)
        message = outgoing.dispatch(row, incident, timeout, self._snapshot(incident.event_id))
        self._out.send(topics.down(unit.site, unit.device_id, "dispatch"), encode(message))
        self.worker.deadlines.set(row["dispatch_id"], timeout, on_device=True)
        incident.tried.add(unit.device_id)
        self._unit_changed(self.units.set_dispatch(unit.device_id, row["dispatch_id"]))
        note = say("note_sent", mode=mode, unit=unit.device_id, metres=round(distance_m), attempt=attempt)
        self._log(row, lc.SENT, actor, note)
        if incident.event_id and workflow.dispatched(
            self.central.db(),
            incident.event_id,
            actor,
            unit.device_id,
            {"dispatch_id": row["dispatch_id"], "mode": mode},
        ):
            self._out.show("event", {"event_id": incident.event_id})
        return row["dispatch_id"]

    # --- lifecycle steps ------------------------------------------------------------------------------

    def _move(
        self, row: dict, trigger: str, actor: str, detail: Text | str = "", notice: str = "", **fields
    ) -> lc.Step:
        """Apply ``trigger`` to the dispatch (``lifecycle.apply``; ``Refused`` if not allowed), record the step
        and carry out FREE_UNIT and NOTIFY_BADGE (``notice``: what the badge is told, else ``detail``). The
        caller carries out the effects that need its context (escalate, reroute, close the event, alert)."""
        step = lc.apply(row["state"], trigger, row["mode"])
        if not step.changed:
            return step
        updated = {**row, **fields, "state": step.state, "updated_at": timeutil.now_wire()}
        self.repository.update_dispatch(
            row["dispatch_id"], {"state": step.state, "updated_at": updated["updated_at"], **fields}
        )
        self.worker.deadlines.clear(row["dispatch_id"])
        if lc.FREE_UNIT in step.effects:
            unit = self.units.get(row["unit"])
            if unit is not None and unit.current_dispatch == row["dispatch_id"]:
                self._unit_changed(self.units.set_dispatch(row["unit"], None))
        self._log(updated, step.state, actor, detail)
        if lc.NOTIFY_BADGE in step.effects:
            self._take_back(row, actor, notice or english(detail))
        return step

    def _take_back(self, row: dict, actor: str, reason: str) -> None:
        """Tell the badge a dispatch is no longer its own (``cancel_dispatch``, recorded like any other command).
        A badge out of coverage finds it in its MQTT session after the dispatch itself, so it never comes
        back to a task central has given to someone else."""
        command = Command(
            device=row["unit"],
            command_id=ids.new_id(),
            name="cancel_dispatch",
            args={"dispatch_id": row["dispatch_id"], "reason": reason[:200]},
        )
        site = row["site"] or self.central.config.central.site
        commands.record(self.central.db(), command, site, actor)
        self._out.send(topics.down(site, row["unit"], "command"), encode(command))

    def _stand_down(self, row: dict, trigger: str, actor: str, reason: Text | str) -> lc.Step:
        return self._move(row, trigger, actor, reason, reason=english(reason))

    def _log(self, row: dict, state: str, actor: str, note: Text | str = "") -> None:
        at, detail = timeutil.now_wire(), english(note)
        self.repository.log_state(row["dispatch_id"], state, at, actor, note)
        what = {"detail": detail, "unit": row["unit"]}
        audit.append(self.central.db(), actor, f"dispatch.{state}", row["dispatch_id"], what)
        self._out.show("dispatch", {**row, "state": state, "updated_at": at, "by": actor, "detail": detail})

    def _device_warning(self, device: str, condition: str, text: alerts.Text, **refs) -> None:
        """A warning a device's message raised: merged with its repeats and rate-limited per device."""
        self._alert("warning", text, device=device, condition=condition, **refs)

    def _alert(
        self,
        level: str,
        text: alerts.Text,
        incident: Incident | None = None,
        *,
        event_id: str | None = None,
        dispatch_id: str | None = None,
        device: str | None = None,
        condition: str | None = None,
    ) -> None:
        """Store an alert for the operators (inside the running transaction) and show it live. With
        ``condition``, a device's message raised it: repeats are merged and rate-limited per device."""
        if incident is not None and event_id is None:
            event_id = incident.event_id
        log.log(logging.WARNING if level != "info" else logging.INFO, "routing alert: %s", text.english)
        where = {"event_id": event_id, "dispatch_id": dispatch_id}
        if condition and device:
            row = alerts.raise_for_device(self.central.db(), level, text, device, condition, **where)
        else:
            row = alerts.add(self.central.db(), level, text, device=device, **where)
        if incident is not None:
            row["event_type"] = incident.event_type
        self._out.show("alert", row)

    # --- answers from the badges ----------------------------------------------------------------------

    def _reject(self, site: str, message: DispatchState, reason: alerts.Text) -> None:
        """Keep a wrong answer for inspection and tell the operator; it changes nothing."""
        why, payload = reason.english, encode(message)
        db = self.central.db()
        topic = topics.up(site, message.device, "dispatch_state")
        dead_letters.add(db, topic, payload, why, timeutil.now_wire(), keep_bytes=len(payload))
        audit.append(db, message.device, "dispatch.rejected", message.dispatch_id, {"reason": why})
        text = say("answer_refused", device=message.device, why=reason)
        self._device_warning(message.device, "dispatch_state refused", text, dispatch_id=message.dispatch_id)

    def _on_dispatch_state(self, site: str, message: DispatchState) -> None:
        row = self.repository.get_dispatch(message.dispatch_id)
        what = {"state": message.state, "dispatch": message.dispatch_id}
        if row is None:
            self._reject(site, message, say("answer_unknown_dispatch", **what))
            return
        if row["unit"] != message.device:
            self._reject(site, message, say("answer_other_unit", **what, unit=row["unit"]))
            return
        if not lc.allowed(row["state"], message.state):
            if row["state"] in lc.ACTIVE:  # an answer going back
                self._reject(site, message, say("answer_going_back", **what, current=row["state"]))
            else:
                self._reject(site, message, say("answer_too_late", **what, current=row["state"]))
            return
        if message.state == lc.DECLINED:
            step = self._move(row, lc.DECLINED, message.device, message.reason or "", reason=message.reason)
            if lc.ESCALATE in step.effects:
                self._escalate(row, say("unit_declined", device=message.device, reason=message.reason or "—"))
            return
        note = message.note or row["note"]
        step = self._move(row, message.state, message.device, message.note or "", note=note)
        if lc.CLOSE_EVENT in step.effects and row["event_id"]:
            self._resolved(row, message)

    def _resolved(self, row: dict, message: DispatchState) -> None:
        """CLOSE_EVENT: one unit has dealt with the event; the others sent to it (an intercept, or a proposal
        still open) stand down, and the event is closed with the officer's note."""
        event_id = row["event_id"]
        self._forget(event_id)
        others = self.repository.find_dispatches(
            states=lc.UNDER_WAY, event_id=event_id, not_id=row["dispatch_id"]
        )
        for other in others:
            self._stand_down(
                other, lc.OTHER_RESOLVED, SYSTEM, say("note_other_resolved", device=message.device)
            )
        note = message.note or f"resolved by {message.device}"
        stood_down = [o["unit"] for o in others]
        detail = {"dispatch_id": row["dispatch_id"], "stood_down": stood_down}
        if workflow.resolved(self.central.db(), event_id, message.device, note, detail):
            self._out.show("event", {"event_id": event_id})

    # --- deadlines ------------------------------------------------------------------------------------

    def _expire(self, due: list[str]) -> None:
        for dispatch_id in due:
            row = self.repository.get_dispatch(dispatch_id)
            if row is not None and row["state"] == lc.PROPOSED:
                self.worker.deadlines.clear(dispatch_id)
                self._confirmation_overdue(row)
                continue
            if row is None or not lc.allowed(row["state"], lc.ACK_DEADLINE):
                self.worker.deadlines.clear(dispatch_id)
                continue
            waited = self.config.ack_timeout_s
            step = self._move(
                row,
                lc.ACK_DEADLINE,
                SYSTEM,
                say("note_no_acknowledgement", seconds=waited),
                notice=f"not acknowledged within {waited} s: central took it back",
            )
            unit = self.units.get(row["unit"])
            online = "online" if unit and unit.online else "offline"
            text = say("not_acknowledged", unit=row["unit"], online=online, seconds=waited)
            if lc.ESCALATE in step.effects:
                self._escalate(row, text)
            elif lc.ALERT in step.effects:
                self._alert("warning", text, dispatch_id=dispatch_id, event_id=row["event_id"])

    def _confirmation_overdue(self, row: dict) -> None:
        """No operator confirmed a proposal in time: alert, and under ``on_confirm_timeout = "send"`` send
        the unit anyway (or, if it is no longer free, the nearest free one)."""
        waited = self.config.confirm_timeout_s
        self.repository.update_dispatch(row["dispatch_id"], {"deadline_at": None})  # alert once
        incident = self._incident(row["event_id"])
        if self.config.on_confirm_timeout == "alert" or incident is None:
            lc.apply(row["state"], lc.CONFIRM_OVERDUE_ALERT)
            self._alert(
                "critical",
                say("nobody_confirmed", unit=row["unit"], seconds=waited),
                incident,
                event_id=row["event_id"],
                dispatch_id=row["dispatch_id"],
            )
            return
        unit = self.units.get(row["unit"])
        if unit is not None and unit.free() and not self.units.is_revoked(unit.device_id):
            lc.apply(row["state"], lc.CONFIRM_OVERDUE_SEND)
            self._log(row, "confirmed", SYSTEM, say("note_sent_by_policy", seconds=waited))
            self._send(incident, unit, row["distance_m"], "nearest", row["attempt"], SYSTEM, row=row)
            text = say("sent_by_policy", unit=row["unit"], seconds=waited)
        else:
            why = say("note_not_confirmed_busy", seconds=waited, unit=row["unit"])
            self._move(row, lc.CONFIRM_OVERDUE_BUSY, SYSTEM, why)
            self._route(incident, attempt=row["attempt"] + 1, actor=SYSTEM, policy="auto")
            text = say("confirmed_unit_busy", unit=row["unit"], seconds=waited)
        self._alert("warning", text, incident, dispatch_id=row["dispatch_id"])

    def _escalate(self, row: dict, why: alerts.Text) -> None:
        incident = self._incident(row["event_id"])
        if incident is None:
            self._alert("warning", say("no_event_to_reroute", why=why), dispatch_id=row["dispatch_id"])
            return
        incident.tried.add(row["unit"])
        self._alert("warning", say("escalating", why=why), incident, dispatch_id=row["dispatch_id"])
        self._route(incident, attempt=row["attempt"] + 1, actor=SYSTEM)

    # --- evidence -------------------------------------------------------------------------------------

    def _on_evidence(self, segment: EvidenceSegment) -> None:
        if problem := self.evidence.record(self.central.db(), segment):
            what = {"problem": str(problem)}
            audit.append(self.central.db(), segment.device, "evidence.chain_broken", segment.segment_id, what)
            found = say(f"evidence_{problem.code}", **problem.params)
            text = say("evidence_chain_broken", device=segment.device, index=segment.index, problem=found)
            self._alert("critical", text, device=segment.device, condition="evidence chain broken")
