"""Commands to devices and the results they send back.

``send`` checks and records a command, audits who sent it, and publishes it on the device's
``down/command`` topic; the device answers with a ``command_result``, which ``listen`` (an ingest hook)
stores against the command and shows live on the device page. A result that answers no command of that
device is kept in ``dead_letters`` with the reason, like any other message that breaks the contract.

A device that says it is online again is sent, once more, the commands it has not answered that are still young
enough to carry out (``unanswered``): one that moved to the standby broker, or whose broker restarted without
its session, never got them; one that did carries each out once (``edge/runtime/accepted.py``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from pydantic import ValidationError

from kuzet.central.auth import audit
from kuzet.central.context import Central
from kuzet.central.store import dead_letters, portable
from kuzet.shared import ids, timeutil, topics
from kuzet.shared.messages import (
    COMMAND_MAX_AGE_S,
    EXPIRED,
    INTERRUPTED,
    Availability,
    Command,
    CommandResult,
    encode,
)

log = logging.getLogger(__name__)

# The permission each command needs. Starting a live stream or taking a snapshot shows footage, so it is
# for those who may see evidence; the rest keeps devices running, for technicians. cancel_dispatch belongs
# to routing (POST /api/v1/dispatches/<id>/cancel), which keeps the dispatch and the badge in step.
PERMISSION = {
    "live_start": "events.media",
    "live_stop": "events.media",
    "snapshot": "events.media",
    "reload_config": "devices.manage",
    "detection_on": "devices.manage",
    "detection_off": "devices.manage",
    "install_update": "devices.manage",
    "rollback_update": "devices.manage",
}
ROUTING_ONLY = {"cancel_dispatch": "use POST /api/v1/dispatches/<dispatch_id>/cancel"}
_COLUMNS = (
    "command_id",
    "device",
    "site",
    "name",
    "args",
    "created_at",
    "created_by",
    "state",
    "result_at",
    "result_message",
    "result_data",
)


class CommandError(Exception):
    """A command that cannot be sent; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def build(device: str, name: object, args: object) -> Command:
    """The command as it will travel, checked against the shared contract."""
    if name in ROUTING_ONLY:
        raise CommandError(f"{name} is sent by routing: {ROUTING_ONLY[name]}", 409)
    if name not in PERMISSION:
        raise CommandError(f"'name' must be one of {', '.join(PERMISSION)}")
    if not isinstance(args, dict):
        raise CommandError("'args' must be a JSON object")
    try:
        return Command(device=device, command_id=ids.new_id(), name=name, args=args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CommandError(f"the command breaks the contract: {problems}") from None


def send(central: Central, device_id: str, name: object, args: object, actor: str) -> dict:
    """Record, audit and publish a command to a registered device; returns its row."""
    db = central.db()
    row = portable.execute(
        db, "select site, revoked_at from devices where device_id = ?", [device_id]
    ).fetchone()
    if row is None:
        raise CommandError(f"no device {device_id}", 404)
    site, revoked_at = row
    if revoked_at:
        raise CommandError(f"{device_id} is revoked: it takes no commands", 409)
    command = build(device_id, name, args)
    site = site or central.config.central.site
    with audit.transaction(db):
        record(db, command, site, actor)
    try:
        central.publish(topics.down(site, device_id, "command"), encode(command))
    except Exception as exc:
        with audit.transaction(db):
            portable.execute(
                db, "update commands set state = 'unsent' where command_id = ?", [command.command_id]
            )
            audit.append(
                db,
                "central",
                "device.command_unsent",
                f"device:{device_id}",
                {"command_id": command.command_id},
            )
        raise CommandError(f"central could not send the command: {exc}", 503) from None
    return get(db, command.command_id)


def record(db, command: Command, site: str, actor: str) -> None:
    """Store and audit a command about to be published (inside the caller's transaction)."""
    portable.execute(
        db,
        "insert into commands (command_id, device, site, name, args, created_at, created_by, state)"
        " values (?, ?, ?, ?, ?, ?, ?, 'sent')",
        [
            command.command_id,
            command.device,
            site,
            command.name,
            json.dumps(command.args),
            timeutil.now_wire(),
            actor,
        ],
    )
    audit.append(
        db,
        actor,
        "device.command",
        f"device:{command.device}",
        {"command_id": command.command_id, "name": command.name, "args": command.args},
    )


def record_result(db, result: CommandResult) -> dict:
    """Store a device's answer against its command; raises CommandError when it answers no command of
    that device (or answers twice, differently). A device answers a command once, whichever brokers it came
    through; what comes again is a QoS 1 re-delivery of that answer, or a copy of the command that reached the
    device too late and was refused unopened (``data.expired``): neither changes the first answer."""
    with audit.transaction(db):
        row = get(db, result.command_id)
        if row is None:
            raise CommandError(f"result for unknown command {result.command_id}")
        if row["device"] != result.device:
            raise CommandError(f"result for command {result.command_id}, which was sent to {row['device']}")
        if row["result_at"] is not None:
            if row["result_message"] == result.message and row["state"] == ("ok" if result.ok else "failed"):
                return row  # a QoS 1 re-delivery
            if result.data.get(EXPIRED) is True or result.data.get(INTERRUPTED) is True:
                # a late copy of the command (the device's other broker kept it), not carried out; or the device
                # restarted after handing its answer to the outbox and before noting it answered
                return row
            raise CommandError(f"second, different result for command {result.command_id}")
        state = "ok" if result.ok else "failed"
        portable.execute(
            db,
            "update commands set state = ?, result_at = ?, result_message = ?, result_data = ?"
            " where command_id = ?",
            [state, timeutil.now_wire(), result.message, json.dumps(result.data), result.command_id],
        )
        audit.append(
            db,
            result.device,
            "device.command_result",
            f"device:{result.device}",
            {
                "command_id": result.command_id,
                "name": result.name,
                "ok": result.ok,
                "message": result.message,
            },
        )
    return get(db, result.command_id)


def get(db, command_id: str) -> dict | None:
    found = portable.execute(
        db, f"select {', '.join(_COLUMNS)} from commands where command_id = ?", [command_id]
    )
    row = found.fetchone()
    return _shape(row) if row else None


def list_for(db, device_id: str, limit: int = 50) -> list[dict]:
    rows = portable.execute(
        db,
        f"select {', '.join(_COLUMNS)} from commands where device = ? order by created_at desc, command_id desc"
        " limit ?",
        [device_id, limit],
    )
    return [_shape(row) for row in rows]


def unanswered(db, device_id: str, online_at: datetime) -> list[Command]:
    """The commands to ``device_id`` a device that came online at ``online_at`` may not have got: sent, not
    answered, and young enough to carry out. A device online since longer ago than that (a retained message
    delivered again) costs no query."""
    oldest = timeutil.utc_now() - timedelta(seconds=COMMAND_MAX_AGE_S)
    if online_at < oldest:
        return []
    rows = portable.execute(
        db,
        "select command_id, name, args, created_at from commands"
        " where device = ? and created_at >= ? and state = 'sent' order by created_at",
        [device_id, timeutil.to_wire(oldest)],
    )
    return [
        Command(device=device_id, command_id=c, name=n, args=json.loads(a), ts=timeutil.from_wire(t))
        for c, n, a, t in rows
    ]


def _shape(row) -> dict:
    shaped = dict(zip(_COLUMNS, row, strict=True))
    for column in ("args", "result_data"):
        shaped[column] = json.loads(shaped[column]) if shaped[column] else None
    return shaped


def listen(central: Central, ingest) -> None:
    """Register the ingest hooks: command results stored, unanswered commands sent again to a device back."""

    def on_result(message: CommandResult, site: str) -> None:
        db = central.db()
        try:
            row = record_result(db, message)
        except CommandError as exc:
            _reject(central, message, site, str(exc))
            return
        central.hub.publish("command", row)

    def on_availability(message: Availability, site: str) -> None:
        if message.state != "online":
            return
        for command in unanswered(central.db(), message.device, message.ts):
            log.info("command %s sent again to %s, back online", command.command_id, message.device)
            central.publish(topics.down(site, message.device, "command"), encode(command))

    ingest.on("command_result", on_result)
    ingest.on("availability", on_availability)


def _reject(central: Central, message: CommandResult, site: str, why: str) -> None:
    """Keep a result that answers no command of its device for inspection, audited; it changes nothing."""
    log.warning("commands: %s: %s", message.device, why)
    db = central.db()
    topic = topics.up(site, message.device, "command_result")
    with audit.transaction(db):
        letter_id = dead_letters.add(
            db,
            topic,
            encode(message),
            why,
            timeutil.now_wire(),
            central.config.storage.dead_letter_payload_bytes,
        )
        audit.append(
            db, message.device, "device.command_result_rejected", f"device:{message.device}", {"reason": why}
        )
    central.hub.publish("dead_letter", {"id": letter_id, "topic": topic, "reason": why})
