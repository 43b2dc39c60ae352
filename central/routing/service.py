"""Routing: which events need a patrol, which unit goes, and what happens when it does not answer.

Ingest calls the hooks on its own thread after each batch commits; they only queue the message. One worker
thread applies queued messages in batches (one SQLite transaction per batch) and checks acknowledgement
deadlines, so ingest is never slowed by routing. Operator actions (the web API) run on the request thread
under the same lock. Every state change of a dispatch is written to ``dispatches`` and ``dispatch_log``,
audited, and published on the live hub ("dispatch", "unit", "alert"); messages to badges leave only after
the transaction that records them has committed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from kuzet.central import alerts, commands
from kuzet.central.auth import audit
from kuzet.central.context import Central
from kuzet.central.routing import geo, store
from kuzet.central.routing.evidence import EvidenceLedger
from kuzet.central.routing.units import Candidate, Unit, Units
from kuzet.central.store import registry, workflow
from kuzet.shared import ids, timeutil, topics
from kuzet.shared.messages import (
    SEVERITY_RANK,
    Availability,
    Command,
    Dispatch,
    DispatchState,
    Envelope,
    Event,
    EvidenceSegment,
    Location,
    Status,
    encode,
    to_base64,
)

log = logging.getLogger(__name__)

ACTIVE = ("sent", "acknowledged", "en_route", "on_scene")  # the unit is busy with it
PROGRESS = ("sent", "acknowledged", "en_route", "on_scene", "resolved")  # a badge only moves forward
SYSTEM = "routing"  # the actor for what routing decides by itself
HOOKED_KINDS = ("event", "location", "dispatch_state", "status", "availability", "evidence")
RECONCILE_S = 1.0  # how often to look for dispatches left to a revoked badge or a closed event
_UNDER_WAY = f"state in ({', '.join(repr(state) for state in (*ACTIVE, 'proposed'))})"


class RoutingError(Exception):
    """An operator request that cannot be done; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


@dataclass
class Incident:
    """What routing needs to know about an event to send someone there."""

    event_id: str | None
    site: str
    event_type: str
    severity: str
    lat: float
    lon: float
    description: str = ""
    direction_deg: float | None = None
    source_device: str | None = None  # a panicking badge is not sent to its own panic
    tried: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


class RoutingService:
    def __init__(self, central: Central, ingest=None):
        self.central = central
        self.config = central.config.routing
        self.ingest = ingest
        self.units = Units(central.db)
        self._lock = threading.RLock()
        self._queue: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._deadlines: dict[
            str, float
        ] = {}  # dispatch_id -> time.monotonic() deadline ('sent', 'proposed')
        self._incidents: dict[str, Incident] = {}  # event_id -> incident being routed
        self._waiting: dict[str, Incident] = {}  # event_id -> incident with no free unit yet
        self._seen: OrderedDict[str, None] = OrderedDict()  # event ids already considered
        self.evidence = EvidenceLedger()
        self._out: list[tuple[str, bytes]] = []
        self._live: list[tuple[str, dict]] = []
        self._next_reconcile = 0.0

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> RoutingService:
        self._reload_deadlines()
        self._reload_waiting()
        if self.ingest is not None:
            for kind in HOOKED_KINDS:
                self.ingest.on(kind, self.handle)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="routing", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Apply what ingest already handed over, then stop (call after ingest.stop())."""
        if self._thread is not None and self._thread.is_alive():
            self.drain(timeout_s=10)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _reload_deadlines(self) -> None:
        """After a restart, dispatches still waiting for an acknowledgement (or proposals waiting for an
        operator's confirmation) keep their deadline."""
        now_wall, now_mono = timeutil.utc_now(), time.monotonic()
        for row in self.central.db().query(
            "select dispatch_id, deadline_at from dispatches where state in ('sent', 'proposed')"
        ):
            if row["deadline_at"]:
                left = (timeutil.from_wire(row["deadline_at"]) - now_wall).total_seconds()
                self._deadlines[row["dispatch_id"]] = now_mono + max(0.0, left)

    def _reload_waiting(self) -> None:
        """After a restart, events that needed a patrol and never got one wait for a unit again."""
        oldest = timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=self.config.waiting_max_age_s))
        rows = self.central.db().execute(
            "select event_id, event_type, severity from events where status = 'new' "
            "and received_at >= ? and event_id not in (select event_id from dispatches where event_id is not null)",
            [oldest],
        )
        for event_id, event_type, severity in rows.fetchall():
            if (
                self._needs_patrol(event_type, severity)
                and (incident := self._incident(event_id)) is not None
            ):
                self._waiting[event_id] = incident
                self._seen[event_id] = None
        if self._waiting:
            log.info("routing: %d event(s) from before the restart wait for a unit", len(self._waiting))
            self._queue.put(("", None))  # the worker tries them first thing

    # --- the way in -----------------------------------------------------------------------------------

    def handle(self, message: Envelope, site: str) -> None:
        """Queue one decoded message from a device: the ingest hook (called after ingest's commit)."""
        self._queue.put((site, message))

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far has been applied; for tests and orderly shutdown."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = [self._queue.get(timeout=0.1)]
            except queue.Empty:
                batch = []
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            work = [item for item in batch if not isinstance(item, threading.Event)]
            try:
                if work:
                    with self._transaction():
                        for site, message in work:
                            self._apply(site, message)
                self._expire_deadlines()
                if time.monotonic() >= self._next_reconcile:
                    self._next_reconcile = time.monotonic() + RECONCILE_S
                    self._reconcile()
            except Exception:  # a bug here must not stop routing for the whole city
                log.exception("routing: batch failed")
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()

    @contextmanager
    def _transaction(self):
        """One SQLite transaction; what it sends and shows goes out only once it has committed."""
        with self._lock:
            db = self.central.db()
            self._out, self._live = [], []
            with audit.transaction(db):
                yield db
            out, live = self._out, self._live
            self._out, self._live = [], []
            for topic, payload in out:
                try:
                    self.central.publish(topic, payload)
                except Exception as exc:  # the deadline will catch a dispatch that never left
                    log.error("routing: cannot publish %s: %s", topic, exc)
            for channel, data in live:
                self.central.hub.publish(channel, data)

    def _apply(self, site: str, message: Envelope | None) -> None:
        if message is None:
            self._serve_waiting()
            return
        try:
            if isinstance(message, Event):
                self._on_event(site, message)
            elif isinstance(message, DispatchState):
                self._on_dispatch_state(site, message)
            elif isinstance(message, Location):
                self._unit_changed(self.units.on_location(site, message))
            elif isinstance(message, Status):
                self._unit_changed(self.units.on_status(site, message))
            elif isinstance(message, Availability):
                unit = self.units.on_availability(site, message)
                self._unit_changed(unit)
                if unit is not None and not unit.online and unit.current_dispatch:
                    self._alert(
                        "warning",
                        f"{unit.callsign or unit.device_id} went offline during dispatch {unit.current_dispatch}",
                        dispatch_id=unit.current_dispatch,
                        device=unit.device_id,
                    )
            elif isinstance(message, EvidenceSegment):
                self._on_evidence(message)
        except Exception:
            log.exception("routing: failed on %s from %s", message.type, message.device)

    # --- units ----------------------------------------------------------------------------------------

    def _unit_changed(self, unit: Unit | None) -> None:
        if unit is None:
            return
        store.save_unit(self.central.db(), unit)
        self._live.append(("unit", unit.as_dict()))
        if unit.free() and self._waiting:
            self._serve_waiting()

    def _set_unit_dispatch(self, device: str, dispatch_id: str | None) -> None:
        unit = self.units.set_dispatch(device, dispatch_id)
        if unit is not None:
            self._unit_changed(unit)

    # --- events ---------------------------------------------------------------------------------------

    def _needs_patrol(self, event_type: str, severity: str) -> bool:
        if not self.config.enabled or event_type not in self.config.event_types:
            return False
        needed = self.config.min_severity_for(event_type)
        return SEVERITY_RANK[severity] >= SEVERITY_RANK[needed]

    def _on_event(self, site: str, message: Event) -> None:
        # The first message of an event routing sees may be its "closed" one: ingest hands over only the
        # newest state of each event in a batch, and a camera's replayed backlog brings open and closed
        # together. A camera closing its track does not mean anyone went there, so it is routed all the
        # same, unless it is too old to send anyone to.
        if message.event_id in self._seen:
            return
        self._seen[message.event_id] = None
        if len(self._seen) > 100_000:
            self._seen.popitem(last=False)
        if not self._needs_patrol(message.event_type, message.severity):
            return
        age_s = (timeutil.utc_now() - message.started_at).total_seconds()
        if age_s > self.config.waiting_max_age_s:
            log.info("routing: %s started %.0f s ago; too old to send a patrol", message.event_id, age_s)
            return
        db = self.central.db()
        if db.execute("select 1 from dispatches where event_id = ? limit 1", [message.event_id]).fetchone():
            return  # already routed (central restarted and the edge re-sent the event)
        if _event_closed(db, message.event_id):
            return  # an operator has already closed it
        position = message.location
        if position is None:
            camera = self._device_position(message.device)
            if camera is None:
                self._alert(
                    "warning",
                    f"{message.event_type} event from {message.device} has no position: assign a unit by hand",
                    event_id=message.event_id,
                )
                return
            lat, lon = camera
        else:
            lat, lon = position.lat, position.lon
        direction = message.attributes.get("direction_deg")
        incident = Incident(
            event_id=message.event_id,
            site=site,
            event_type=message.event_type,
            severity=message.severity,
            lat=lat,
            lon=lon,
            description=message.description or message.label,
            direction_deg=float(direction) % 360 if isinstance(direction, int | float) else None,
            source_device=message.device,
        )
        self._incidents[message.event_id] = incident
        rule = self.config.rule(message.event_type)
        if rule.mode == "intercept":
            if not self._intercept(incident, self.config.intercept_radius_m, SYSTEM):
                self._alert(
                    "critical", f"no free unit within range to intercept {message.event_type}", incident
                )
        else:
            self._route(incident, attempt=1, actor=SYSTEM)

    def _device_position(self, device: str) -> tuple[float, float] | None:
        row = (
            self.central.db().execute("select lat, lon from devices where device_id = ?", [device]).fetchone()
        )
        if row is None or row[0] is None or row[1] is None:
            return None
        return row[0], row[1]

    def _candidates(
        self, incident: Incident, limit: int | None = None, skip_tried: bool = True
    ) -> list[Candidate]:
        """Free units nearest first; ``skip_tried``: not those already sent to the event (escalation)."""
        return self.units.candidates(
            incident.lat,
            incident.lon,
            detour_factor=self.config.detour_factor,
            max_age_s=self.config.position_max_age_s,
            max_distance_m=self.config.max_distance_m,
            capabilities=self.config.rule(incident.event_type).capabilities,
            exclude=(incident.tried if skip_tried else set()) | {incident.source_device or ""},
            limit=limit,
        )

    def _route(self, incident: Incident, attempt: int, actor: str, policy: str | None = None) -> str | None:
        """Send (or propose, under the confirm policy) the nearest free unit; queue the event if none."""
        if attempt > self.config.max_attempts:
            self._waiting.pop(incident.event_id or "", None)
            self._alert(
                "critical",
                f"{attempt - 1} units did not take the {incident.event_type} event: assign a unit by hand",
                incident,
            )
            return None
        candidates = self._candidates(incident, limit=1)
        if not candidates:
            if incident.event_id not in self._waiting:
                self._waiting[incident.event_id or ids.new_id()] = incident
                self._alert(
                    "warning",
                    f"no free unit for the {incident.severity} {incident.event_type} event; waiting for one",
                    incident,
                )
            return None
        self._waiting.pop(incident.event_id or "", None)
        best = candidates[0]
        if (policy or self.config.policy_for(incident.event_type)) == "confirm":
            return self._propose(incident, best, attempt, actor)
        return self._send(incident, best.unit, best.travel_m, "nearest", attempt, actor)

    def _serve_waiting(self) -> None:
        order = sorted(self._waiting.values(), key=lambda i: (-SEVERITY_RANK[i.severity], i.since))
        for incident in order:
            if not any(u.free() for u in self.units.all()):
                return
            self._route(incident, attempt=len(incident.tried) + 1, actor=SYSTEM)

    # --- dispatches -----------------------------------------------------------------------------------

    def _snapshot(self, event_id: str | None) -> str | None:
        if event_id is None or self.config.snapshot_max_bytes == 0:
            return None
        row = (
            self.central.db()
            .execute(
                "select path, size from media where event_id = ? and kind = 'snapshot' order by created_at desc limit 1",
                [event_id],
            )
            .fetchone()
        )
        if row is None or (row[1] or 0) > self.config.snapshot_max_bytes:
            return None
        path = Path(row[0])
        if not path.is_absolute():
            path = self.central.media_dir / path
        try:
            return to_base64(path.read_bytes())
        except OSError as exc:
            log.warning("routing: snapshot of %s unreadable: %s", event_id, exc)
            return None

    def _insert(
        self,
        incident: Incident,
        unit: Unit,
        distance_m: float,
        mode: str,
        state: str,
        attempt: int,
        actor: str,
        radius_m: float | None = None,
    ) -> dict:
        now = timeutil.now_wire()
        row = dict(
            dispatch_id=ids.new_id(),
            event_id=incident.event_id,
            unit=unit.device_id,
            mode=mode,
            state=state,
            created_at=now,
            updated_at=now,
            deadline_at=None,
            distance_m=round(distance_m, 1),
            created_by=actor,
            note=None,
            reason=None,
            attempt=attempt,
            site=unit.site,
            direction_deg=incident.direction_deg,
            lat=incident.lat,
            lon=incident.lon,
            radius_m=radius_m,
        )
        store.insert_dispatch(self.central.db(), row)
        return row

    def _propose(self, incident: Incident, best: Candidate, attempt: int, actor: str) -> str:
        row = self._insert(incident, best.unit, best.travel_m, "nearest", "proposed", attempt, actor)
        timeout = self.config.confirm_timeout_s
        row["deadline_at"] = timeutil.to_wire(timeutil.utc_now() + timedelta(seconds=timeout))
        store.update_dispatch(self.central.db(), row["dispatch_id"], {"deadline_at": row["deadline_at"]})
        self._deadlines[row["dispatch_id"]] = time.monotonic() + timeout
        self._log(row, "proposed", actor, f"{best.unit.device_id} at {best.travel_m:.0f} m")
        self._alert(
            "info",
            f"confirm {best.unit.callsign or best.unit.device_id} for the {incident.event_type} event "
            f"({best.travel_m:.0f} m)",
            incident,
            dispatch_id=row["dispatch_id"],
        )
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
        timeout = self.config.ack_timeout_s
        if row is None:
            row = self._insert(incident, unit, distance_m, mode, "sent", attempt, actor, radius_m)
        deadline = timeutil.to_wire(timeutil.utc_now() + timedelta(seconds=timeout))
        row.update(state="sent", deadline_at=deadline, updated_at=timeutil.now_wire())
        store.update_dispatch(
            self.central.db(),
            row["dispatch_id"],
            {"state": "sent", "deadline_at": deadline, "updated_at": row["updated_at"]},
        )
        message = Dispatch(
            device=unit.device_id,
            dispatch_id=row["dispatch_id"],
            mode=mode,
            event_id=incident.event_id,
            event_type=incident.event_type,
            severity=incident.severity,
            place={"lat": incident.lat, "lon": incident.lon},
            description=incident.description,
            distance_m=round(distance_m, 1),
            direction_deg=incident.direction_deg,
            ack_deadline_s=timeout,
            snapshot=self._snapshot(incident.event_id),
        )
        self._out.append((topics.down(unit.site, unit.device_id, "dispatch"), encode(message)))
        self._deadlines[row["dispatch_id"]] = time.monotonic() + timeout
        incident.tried.add(unit.device_id)
        self._set_unit_dispatch(unit.device_id, row["dispatch_id"])
        self._log(row, "sent", actor, f"{mode} to {unit.device_id}, {distance_m:.0f} m, attempt {attempt}")
        if incident.event_id:
            self._change_event(
                incident.event_id,
                actor,
                "event.dispatched",
                {"status": "dispatched", "dispatched_unit": unit.device_id},
                {"unit": unit.device_id, "dispatch_id": row["dispatch_id"], "mode": mode},
            )
        return row["dispatch_id"]

    def _change_event(self, event_id: str, actor: str, action: str, changes: dict, detail: dict) -> None:
        """Change the operators' columns of an event as routing decides: audited like an operator's change,
        and announced on the live stream so that queues, counters and maps follow without a reload."""
        db = self.central.db()
        found = db.execute("select status from events where event_id = ?", [event_id]).fetchone()
        if found is None:
            return
        changes = {**changes, "updated_at": timeutil.now_wire()}
        db.execute(
            f"update events set {', '.join(f'{column} = ?' for column in changes)} where event_id = ?",
            [*changes.values(), event_id],
        )
        audit.append(db, actor, action, f"event:{event_id}", {"from": found[0], **detail})
        self._live.append(("event", {"event_id": event_id}))

    def _log(self, row: dict, state: str, actor: str, detail: str = "") -> None:
        at = timeutil.now_wire()
        db = self.central.db()
        store.log_state(db, row["dispatch_id"], state, at, actor, detail)
        audit.append(
            db, actor, f"dispatch.{state}", row["dispatch_id"], {"detail": detail, "unit": row["unit"]}
        )
        self._live.append(
            ("dispatch", {**row, "state": state, "updated_at": at, "by": actor, "detail": detail})
        )

    def _update(self, row: dict, state: str, actor: str, detail: str = "", **fields) -> dict:
        row = {**row, **fields, "state": state, "updated_at": timeutil.now_wire()}
        store.update_dispatch(
            self.central.db(), row["dispatch_id"], {"state": state, "updated_at": row["updated_at"], **fields}
        )
        self._deadlines.pop(row["dispatch_id"], None)
        if state not in ACTIVE:
            unit = self.units.get(row["unit"])
            if unit is not None and unit.current_dispatch == row["dispatch_id"]:
                self._set_unit_dispatch(row["unit"], None)
        self._log(row, state, actor, detail)
        return row

    def _alert(
        self,
        level: str,
        text: str,
        incident: Incident | None = None,
        *,
        event_id: str | None = None,
        dispatch_id: str | None = None,
        device: str | None = None,
    ) -> None:
        """Store an alert for the operators (inside the running transaction) and show it live."""
        if incident is not None and event_id is None:
            event_id = incident.event_id
        log.log(logging.WARNING if level != "info" else logging.INFO, "routing alert: %s", text)
        row = alerts.add(
            self.central.db(), level, text, event_id=event_id, dispatch_id=dispatch_id, device=device
        )
        if incident is not None:
            row["event_type"] = incident.event_type
        self._live.append(("alert", row))

    # --- answers from the badges ----------------------------------------------------------------------

    def _reject(self, site: str, message: DispatchState, why: str) -> None:
        """Keep a wrong answer for inspection and tell the operator; it changes nothing."""
        topic = topics.up(site, message.device, "dispatch_state")
        payload = encode(message)
        self.central.db()["dead_letters"].insert(
            {
                "topic": topic,
                "payload": payload,
                "payload_size": len(payload),
                "reason": why,
                "received_at": timeutil.now_wire(),
            }
        )
        audit.append(
            self.central.db(), message.device, "dispatch.rejected", message.dispatch_id, {"reason": why}
        )
        self._alert(
            "warning", f"{message.device}: {why}", dispatch_id=message.dispatch_id, device=message.device
        )

    def _on_dispatch_state(self, site: str, message: DispatchState) -> None:
        row = store.get_dispatch(self.central.db(), message.dispatch_id)
        if row is None:
            self._reject(site, message, f"{message.state} for unknown dispatch {message.dispatch_id}")
            return
        if row["unit"] != message.device:
            self._reject(
                site, message, f"{message.state} for dispatch {message.dispatch_id}, sent to {row['unit']}"
            )
            return
        if message.state == row["state"]:
            return  # a QoS 1 re-delivery
        if row["state"] not in ACTIVE:
            self._reject(
                site, message, f"{message.state} for dispatch {message.dispatch_id}, already {row['state']}"
            )
            return
        if message.state == "declined":
            self._update(row, "declined", message.device, message.reason or "", reason=message.reason)
            if row["mode"] == "nearest":
                self._escalate(row, f"{message.device} declined: {message.reason}")
            return
        if PROGRESS.index(message.state) < PROGRESS.index(row["state"]):
            self._reject(
                site, message, f"{message.state} after {row['state']} for dispatch {message.dispatch_id}"
            )
            return
        detail = message.note or ""
        self._update(row, message.state, message.device, detail, note=message.note or row["note"])
        if message.state == "resolved" and row["event_id"]:
            self._resolved(row, message)

    def _resolved(self, row: dict, message: DispatchState) -> None:
        """One unit has dealt with the event: the others sent to it (an intercept, or a proposal still
        open) stand down, and the event is closed with the officer's note."""
        event_id = row["event_id"]
        self._incidents.pop(event_id, None)
        self._waiting.pop(event_id, None)
        others = store.find_dispatches(
            self.central.db(),
            f"event_id = ? and dispatch_id != ? and state in ({', '.join('?' * len(ACTIVE))}, 'proposed')",
            [event_id, row["dispatch_id"], *ACTIVE],
        )
        for other in others:
            self._stand_down(other, SYSTEM, f"{message.device} resolved the event")
        note = message.note or f"resolved by {message.device}"
        self._change_event(
            event_id,
            message.device,
            "event.close",
            {"status": "closed", "closed_note": note},
            {"note": note, "dispatch_id": row["dispatch_id"], "stood_down": [o["unit"] for o in others]},
        )

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        due = [d for d, at in self._deadlines.items() if at <= now]
        if not due:
            return
        with self._transaction() as db:
            for dispatch_id in due:
                row = store.get_dispatch(db, dispatch_id)
                if row is not None and row["state"] == "proposed":
                    self._deadlines.pop(dispatch_id, None)
                    self._confirmation_overdue(row)
                    continue
                if row is None or row["state"] != "sent":
                    self._deadlines.pop(dispatch_id, None)
                    continue
                waited = self.config.ack_timeout_s
                self._update(row, "timed_out", SYSTEM, f"no acknowledgement in {waited} s")
                self._take_back(row, SYSTEM, f"not acknowledged within {waited} s: central took it back")
                unit = self.units.get(row["unit"])
                online = "online" if unit and unit.online else "offline"
                text = f"{row['unit']} ({online}) did not acknowledge within {self.config.ack_timeout_s} s"
                if row["mode"] == "nearest":
                    self._escalate(row, text)
                else:
                    self._alert("warning", text, dispatch_id=dispatch_id, event_id=row["event_id"])

    def _confirmation_overdue(self, row: dict) -> None:
        """No operator confirmed a proposal in time: alert, and under ``on_confirm_timeout = "send"`` send
        the unit anyway (or, if it is no longer free, the nearest free one)."""
        waited = self.config.confirm_timeout_s
        store.update_dispatch(self.central.db(), row["dispatch_id"], {"deadline_at": None})  # alert once
        incident = self._incident(row["event_id"])
        if self.config.on_confirm_timeout == "alert" or incident is None:
            self._alert(
                "critical",
                f"nobody confirmed sending {row['unit']} within {waited} s: confirm it or assign a unit",
                incident,
                event_id=row["event_id"],
                dispatch_id=row["dispatch_id"],
            )
            return
        unit = self.units.get(row["unit"])
        if unit is not None and unit.free() and not self.units.is_revoked(unit.device_id):
            self._log(row, "confirmed", SYSTEM, f"nobody confirmed within {waited} s; sent by policy")
            self._send(incident, unit, row["distance_m"], "nearest", row["attempt"], SYSTEM, row=row)
            text = f"nobody confirmed within {waited} s: {row['unit']} was sent"
        else:
            self._update(
                row, "cancelled", SYSTEM, f"not confirmed within {waited} s; {row['unit']} no longer free"
            )
            self._route(incident, attempt=row["attempt"] + 1, actor=SYSTEM, policy="auto")
            text = f"nobody confirmed within {waited} s and {row['unit']} is no longer free: sent the nearest free unit"
        self._alert("warning", text, incident, dispatch_id=row["dispatch_id"])

    def _escalate(self, row: dict, why: str) -> None:
        incident = self._incident(row["event_id"])
        if incident is None:
            self._alert("warning", f"{why}; no event to re-route", dispatch_id=row["dispatch_id"])
            return
        incident.tried.add(row["unit"])
        self._alert(
            "warning", f"{why}; escalating to the next unit", incident, dispatch_id=row["dispatch_id"]
        )
        self._route(incident, attempt=row["attempt"] + 1, actor=SYSTEM)

    def _incident(self, event_id: str | None) -> Incident | None:
        """The event as routing knows it, from memory or (after a restart, or for the API) the events table."""
        if event_id is None:
            return None
        incident = self._incidents.get(event_id)
        if incident is not None:
            return incident
        row = (
            self.central.db()
            .execute(
                "select site, event_type, severity, lat, lon, description, label, device, attributes "
                "from events where event_id = ?",
                [event_id],
            )
            .fetchone()
        )
        if row is None:
            return None
        site, event_type, severity, lat, lon, description, label, device, attributes = row
        if lat is None or lon is None:
            position = self._device_position(device)
            if position is None:
                return None
            lat, lon = position
        direction = json.loads(attributes or "{}").get("direction_deg")
        incident = Incident(
            event_id=event_id,
            site=site or self.central.config.central.site,
            event_type=event_type,
            severity=severity,
            lat=lat,
            lon=lon,
            description=description or label or "",
            direction_deg=float(direction) % 360 if isinstance(direction, int | float) else None,
            source_device=device,
        )
        incident.tried.update(
            r[0]
            for r in self.central.db().execute("select unit from dispatches where event_id = ?", [event_id])
        )
        self._incidents[event_id] = incident
        return incident

    # --- evidence -------------------------------------------------------------------------------------

    def _on_evidence(self, segment: EvidenceSegment) -> None:
        problem = self.evidence.record(self.central.db(), segment)
        if problem:
            audit.append(
                self.central.db(),
                segment.device,
                "evidence.chain_broken",
                segment.segment_id,
                {"problem": problem},
            )
            self._alert(
                "critical",
                f"evidence from {segment.device}, segment {segment.index}: {problem}",
                device=segment.device,
            )

    # --- operator actions (web API) -------------------------------------------------------------------

    def recommend(self, event_id: str, limit: int = 5) -> list[dict]:
        with self._lock:
            incident = self._require_incident(event_id)
            return [
                {**c.unit.as_dict(), "travel_m": round(c.travel_m, 1), "straight_m": round(c.straight_m, 1)}
                for c in self._candidates(incident, limit=limit, skip_tried=False)
            ]

    def _require_incident(self, event_id: str) -> Incident:
        incident = self._incident(event_id)
        if incident is None:
            raise RoutingError(f"event {event_id} is unknown or has no position", 404)
        if _event_closed(self.central.db(), event_id):  # nobody is sent there (closing stood them down)
            raise RoutingError(f"event {event_id} is closed")
        return incident

    def _require_dispatch(self, dispatch_id: str) -> dict:
        row = store.get_dispatch(self.central.db(), dispatch_id)
        if row is None:
            raise RoutingError(f"dispatch {dispatch_id} does not exist", 404)
        return row

    def confirm(self, dispatch_id: str, actor: str) -> dict:
        with self._transaction():
            row = self._require_dispatch(dispatch_id)
            if row["state"] != "proposed":
                raise RoutingError(f"dispatch {dispatch_id} is {row['state']}, not awaiting confirmation")
            unit = self.units.get(row["unit"])
            if unit is None or not unit.free() or self.units.is_revoked(unit.device_id):
                raise RoutingError(f"{row['unit']} is no longer free: recommend again or assign another unit")
            incident = self._require_incident(row["event_id"])
            self._log(row, "confirmed", actor)
            self._send(incident, unit, row["distance_m"], "nearest", row["attempt"], actor, row=row)
        return self.dispatch(dispatch_id)

    def assign(self, event_id: str, device: str, actor: str, note: str = "") -> dict:
        """Manual assignment: the operator sends this unit, whatever routing recommended."""
        with self._transaction():
            incident = self._require_incident(event_id)
            unit = self._require_assignable(device)
            for row in store.find_dispatches(
                self.central.db(), "event_id = ? and state = 'proposed'", [event_id]
            ):
                self._update(row, "cancelled", actor, "superseded by a manual assignment")
            self._waiting.pop(event_id, None)
            distance = geo.travel_m(incident.lat, incident.lon, unit.lat, unit.lon, self.config.detour_factor)
            if note:
                incident.description = f"{incident.description}\n{note}".strip()
            attempt = len(incident.tried) + 1
            dispatch_id = self._send(incident, unit, distance, "manual", attempt, actor)
        return self.dispatch(dispatch_id)

    def _require_assignable(self, device: str) -> Unit:
        unit = self.units.get(device)
        if unit is None:
            raise RoutingError(f"unit {device} is unknown", 404)
        if self.units.is_revoked(device):
            raise RoutingError(f"unit {device} is revoked: it cannot be sent")
        if not unit.online:
            raise RoutingError(f"unit {device} is offline")
        if unit.current_dispatch is not None:
            raise RoutingError(f"unit {device} is on dispatch {unit.current_dispatch}: cancel it first")
        if not unit.has_position():
            raise RoutingError(f"unit {device} has never reported a position")
        return unit

    def cancel(self, dispatch_id: str, actor: str, reason: str) -> dict:
        """Operator override: stop a dispatch; the badge is told."""
        if not reason:
            raise RoutingError("say why the dispatch is cancelled", 400)
        with self._transaction():
            row = self._require_dispatch(dispatch_id)
            if row["state"] not in (*ACTIVE, "proposed"):
                raise RoutingError(f"dispatch {dispatch_id} is already {row['state']}")
            self._stand_down(row, actor, reason)
        return self.dispatch(dispatch_id)

    def _stand_down(self, row: dict, actor: str, reason: str) -> None:
        """Cancel a dispatch; a badge that has it is told."""
        self._update(row, "cancelled", actor, reason, reason=reason)
        if row["state"] != "proposed":
            self._take_back(row, actor, reason)

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
        self._out.append((topics.down(site, row["unit"], "command"), encode(command)))

    def revoke(self, device: str, actor: str, reason: str = "") -> bool:
        """Revoke a device (``registry.revoke``) and, in the same transaction, take a badge off every dispatch
        it holds or is proposed for: each is cancelled (the badge is told, if it can still hear), and each event
        goes to the next unit as the routing rules say. False if there is no such device."""
        with self._transaction() as db:
            if not registry.revoke(db, device, actor, reason):
                return False
            self._withdraw_revoked(device, actor, reason)
        return True

    def _withdraw_revoked(self, device: str, actor: str, reason: str) -> None:
        why = f"{device} was revoked" + (f": {reason}" if reason else "")
        unit = self.units.set_offline(device)  # it may no longer connect; the page should not show it free
        if unit is not None:
            self._unit_changed(unit)
        for row in store.find_dispatches(self.central.db(), f"unit = ? and {_UNDER_WAY}", [device]):
            self._stand_down(row, actor, why)
            self._alert(
                "warning",
                f"{why}, while on dispatch {row['dispatch_id']}: the event goes to the next unit",
                event_id=row["event_id"],
                dispatch_id=row["dispatch_id"],
                device=device,
            )
            self._reroute(row)

    def _reroute(self, row: dict) -> None:
        """Send the event of a dispatch taken from its unit to the next unit as its rule says, unless another
        unit is still on it (the rest of an intercept) or it is closed."""
        event_id = row["event_id"]
        if event_id is None:
            return  # an intercept sent to a place: the other units are still on it
        db = self.central.db()
        if store.find_dispatches(db, f"event_id = ? and {_UNDER_WAY}", [event_id], limit=1):
            return
        if _event_closed(db, event_id):
            return
        incident = self._incident(event_id)
        if incident is None:
            self._alert(
                "warning", "no position to send another unit to: assign one by hand", event_id=event_id
            )
            return
        incident.tried.add(row["unit"])
        if row["mode"] != "intercept" and not self._needs_patrol(incident.event_type, incident.severity):
            self._alert(
                "warning", f"{row['unit']} was taken off the event: assign another unit by hand", incident
            )
        elif row["mode"] == "intercept":
            radius = row["radius_m"] or self.config.intercept_radius_m
            if not self._intercept(incident, radius, SYSTEM):
                self._alert(
                    "critical", f"no free unit within range to intercept {incident.event_type}", incident
                )
        else:
            self._route(incident, attempt=row["attempt"] + 1, actor=SYSTEM)

    def close_event(self, event_id: str, actor: str, note: str) -> dict:
        """The operator closes the event (``workflow.close``) and, in the same transaction, every dispatch
        still under way to it is cancelled with the closing note as the reason: the badges are told."""
        with self._transaction() as db:
            event = workflow.close(db, event_id, actor, note)
            self._stand_down_event(event_id, actor, f"event closed by {actor}: {note}")
        return event

    def _stand_down_event(self, event_id: str, actor: str, reason: str) -> None:
        self._incidents.pop(event_id, None)
        self._waiting.pop(event_id, None)
        for row in store.find_dispatches(self.central.db(), f"event_id = ? and {_UNDER_WAY}", [event_id]):
            self._stand_down(row, actor, reason[:200])

    def _reconcile(self) -> None:
        """Dispatches still under way to a revoked badge or to a closed event, where the revocation or the
        closing was done without routing (``registry.revoke`` or ``workflow.close`` called directly, another
        process): dealt with as if routing had been asked, by routing."""
        where = (
            f"{_UNDER_WAY} and (unit in (select device_id from devices where revoked_at is not null)"
            " or exists (select 1 from events e where e.event_id = dispatches.event_id and e.status = 'closed'))"
        )
        if not store.find_dispatches(self.central.db(), where, limit=1):
            return
        with self._transaction() as db:
            rows = store.find_dispatches(db, where, limit=1000)
            for device in dict.fromkeys(r["unit"] for r in rows if self.units.is_revoked(r["unit"])):
                self._withdraw_revoked(device, SYSTEM, "")
            for event_id in dict.fromkeys(r["event_id"] for r in rows if r["event_id"]):
                found = db.execute("select status, closed_note from events where event_id = ?", [event_id])
                status, note = found.fetchone() or (None, None)
                if status == "closed":
                    self._stand_down_event(event_id, SYSTEM, f"the event was closed: {note or ''}".strip())

    def reassign(self, dispatch_id: str, device: str, actor: str, reason: str) -> dict:
        """Operator override: take the dispatch from its unit and give the event to another."""
        with self._lock:
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
        with self._transaction():
            if event_id is not None:
                incident = self._require_incident(event_id)
            elif lat is not None and lon is not None:
                incident = Incident(None, self.central.config.central.site, event_type, severity, lat, lon)
            else:
                raise RoutingError("intercept needs an event_id or a lat/lon", 400)
            if direction_deg is not None:
                incident.direction_deg = float(direction_deg) % 360
            if description:
                incident.description = description
            sent = self._intercept(incident, radius_m or self.config.intercept_radius_m, actor)
            if not sent:
                raise RoutingError("no free unit within the radius")
        return [self.dispatch(d) for d in sent]

    def _intercept(self, incident: Incident, radius_m: float, actor: str) -> list[str]:
        # Every free unit in range, including one that was sent before and is free again.
        candidates = [c for c in self._candidates(incident, skip_tried=False) if c.straight_m <= radius_m]
        return [
            self._send(incident, c.unit, c.travel_m, "intercept", 1, actor, radius_m=radius_m)
            for c in candidates
        ]

    def edit_unit(
        self, device: str, actor: str, callsign: str | None, capabilities: list[str] | None
    ) -> dict:
        with self._transaction() as db:
            if self.units.get(device) is None:
                raise RoutingError(f"unit {device} is unknown", 404)
            unit = self.units.edit(device, callsign, capabilities)
            self._unit_changed(unit)
            audit.append(db, actor, "unit.edit", device, {"callsign": callsign, "capabilities": capabilities})
        return unit.as_dict()

    # --- queries --------------------------------------------------------------------------------------

    def dispatch(self, dispatch_id: str) -> dict:
        row = self._require_dispatch(dispatch_id)
        row["log"] = store.history(self.central.db(), dispatch_id)
        return row

    def dispatches(
        self, state: str | None = None, event_id: str | None = None, limit: int = 200, with_log: bool = False
    ) -> list[dict]:
        where, args = [], []
        if state:
            where.append("state = ?")
            args.append(state)
        if event_id:
            where.append("event_id = ?")
            args.append(event_id)
        db = self.central.db()
        rows = store.find_dispatches(db, " and ".join(where), args, limit)
        if with_log:
            for row in rows:
                row["log"] = store.history(db, row["dispatch_id"])
        return rows

    def waiting(self) -> list[str]:
        with self._lock:
            return list(self._waiting)


def _event_closed(db, event_id: str) -> bool:
    return db.execute("select status from events where event_id = ?", [event_id]).fetchone() == ("closed",)
