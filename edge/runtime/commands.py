"""Central's commands, the same way on every device: a table ``{name: handler}`` and one policy.

- A command older than ``max_age_s`` (held by the broker while the device was offline) is answered
  "expired" (``data.expired``) and not carried out: the moment it was meant for has passed.
- A command whose id was accepted before is a copy (a QoS 1 re-delivery, or the same command from the site's
  other broker) and is dropped without an answer: the first one is carried out and answered once, through the
  durable outbox. The ids are kept across a restart (``accepted.AcceptedCommands``).
- A known command is queued and carried out on a command thread of its lane, so a slow handler (a download, a
  model load) never blocks the MQTT thread. A lane holds ``queue_size`` commands; one more is answered "busy".
  A device puts the commands that reconfigure it (signed updates...) in a lane of their own, so a download does
  not hold up a quick command such as ``live_stop``.
- An unknown command is answered as such, at once.
- A handler returns ``(ok, message, data)``; one that raises is answered as failed and the device carries on.
- A message from central that does not decode is counted (``bad_down_messages``, in the device's status) and
  kept for a technician in ``rejected.jsonl`` (bounded: the first 4 KiB of each, the last ~1 MiB of them).

- A command accepted before the device stopped (killed, power lost) and never answered is answered as
  interrupted (``data.interrupted``) when the device starts again, and not carried out again: only a person
  knows whether it is still wanted.

Every command gets exactly one answer (each copy arriving too late: "expired", which central takes as such),
and every answer goes through ``answer`` (``Command.answer`` made into a ``CommandResult``, handed to the
device's durable outbox).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kuzet.edge.runtime.accepted import AcceptedCommands
from kuzet.shared import timeutil
from kuzet.shared.messages import COMMAND_MAX_AGE_S, EXPIRED, INTERRUPTED, Command, CommandResult

log = logging.getLogger(__name__)

Reply = tuple[bool, str, dict]  # (ok, message, data) of a carried-out command
Handler = Callable[[Command], Reply]

QUEUE_SIZE = 100
DEFAULT_LANE = "commands"
BAD_MESSAGES = "bad_down_messages"  # the counter of messages from central that did not decode
KEEP_BYTES = 4096  # of each rejected message
ROTATE_BYTES = 1 << 20  # the rejected file is moved aside past this size (one older file is kept)


@dataclass(frozen=True)
class _Entry:
    handler: Handler
    lane: str


class RejectedLog:
    """Messages from central that did not decode, kept for inspection in a bounded JSON-lines file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def keep(self, topic: str, payload: bytes, reason: str) -> None:
        record = {"at": timeutil.now_wire(), "topic": topic, "reason": reason, "size": len(payload)}
        record["payload"] = payload[:KEEP_BYTES].decode("utf-8", errors="replace")
        with self._lock:
            if self.path.exists() and self.path.stat().st_size > ROTATE_BYTES:
                self.path.replace(self.path.with_suffix(".jsonl.old"))
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


class CommandRegistry:
    """``register`` the handlers, ``start`` the lanes' threads; the MQTT thread calls ``submit`` for each
    command and ``reject`` for each message that did not decode. ``accepted_file`` keeps the accepted ids
    across a restart (None: in memory only)."""

    def __init__(
        self,
        kind: str,
        device: str,
        answer: Callable[[CommandResult], None],
        *,
        count: Callable[[str], None] | None = None,
        rejected: RejectedLog | None = None,
        accepted_file: Path | None = None,
        max_age_s: float = COMMAND_MAX_AGE_S,
        queue_size: int = QUEUE_SIZE,
    ):
        self.kind, self.device = kind, device
        self._send = answer
        self._count = count or (lambda name: None)
        self.rejected = rejected
        self.max_age_s = max_age_s
        self.accepted = AcceptedCommands(accepted_file, max_age_s)
        self.queue_size = queue_size
        self.bad_messages = 0  # since start; the persistent count is the ``bad_down_messages`` counter
        self.on_bad_message: Callable[[str], None] | None = None  # e.g. a notice on the badge's screen
        self._handlers: dict[str, _Entry] = {}
        self._lanes: dict[str, queue.Queue[Command]] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def register(self, name: str, handler: Handler, lane: str = DEFAULT_LANE) -> None:
        self._handlers[name] = _Entry(handler, lane)
        self._lanes.setdefault(lane, queue.Queue(maxsize=self.queue_size))

    def register_all(self, handlers: dict[str, Handler], lane: str = DEFAULT_LANE) -> None:
        for name, handler in handlers.items():
            self.register(name, handler, lane)

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> CommandRegistry:
        for command in self.accepted.interrupted():
            log.warning(
                "%s: command %s (%s) was interrupted by a restart",
                self.device,
                command.command_id,
                command.name,
            )
            self.answer(
                command,
                False,
                f"interrupted: the {self.kind} stopped before it finished {command.name}; not carried out again,"
                " send it anew if it is still needed",
                {INTERRUPTED: True},
            )
        for lane, waiting in self._lanes.items():
            thread = threading.Thread(target=self._run, args=(waiting,), name=f"{lane}-lane", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    # --- on the MQTT thread ---------------------------------------------------------------------------------

    def submit(self, command: Command) -> None:
        """Expire, drop (a copy), refuse or queue ``command``; never waits for a handler."""
        age = (timeutil.utc_now() - command.ts).total_seconds()
        if age > self.max_age_s:
            self.answer(command, False, f"expired: sent {age:.0f} s ago, not carried out", {EXPIRED: True})
            return
        # Before anything else answers it: a copy of a command refused as busy or unknown is dropped too, as
        # central has its answer already.
        if not self.accepted.first_time(command):
            log.info("%s: command %s (%s) came again; dropped", self.device, command.command_id, command.name)
            return
        entry = self._handlers.get(command.name)
        if entry is None:
            self.answer(
                command, False, f"unknown command {command.name!r}: a {self.kind} does not do {command.name}"
            )
            return
        try:
            self._lanes[entry.lane].put_nowait(command)
        except queue.Full:
            self.answer(
                command, False, f"the {self.kind} is busy: too many commands waiting; send it again later"
            )

    def reject(self, topic: str, payload: bytes, reason: str) -> None:
        """A message from central that did not decode: counted, kept, and otherwise ignored."""
        log.warning("%s: ignored a bad message on %s: %s", self.device, topic, reason)
        self.bad_messages += 1
        self._count(BAD_MESSAGES)
        if self.rejected is not None:
            try:
                self.rejected.keep(topic, payload, reason)
            except OSError:
                log.exception("the bad message could not be kept")
        if self.on_bad_message is not None:
            self.on_bad_message(reason)

    # --- on a lane's thread ---------------------------------------------------------------------------------

    def _run(self, waiting: queue.Queue[Command]) -> None:
        while not self._stop.is_set():
            try:
                command = waiting.get(timeout=0.5)
            except queue.Empty:
                continue
            self.execute(command)

    def execute(self, command: Command) -> None:
        """Carry out ``command`` now and answer it (the lanes call this; so can a test)."""
        try:
            ok, text, data = self._handlers[command.name].handler(command)
        except Exception as exc:  # a failed command is answered, never fatal
            log.exception("%s: command %s failed", self.device, command.name)
            ok, text, data = False, f"{command.name} failed: {exc}", {}
        self.answer(command, ok, text, data)

    def answer(self, command: Command, ok: bool, text: str, data: dict | None = None) -> None:
        """The one place a command is answered."""
        self._send(command.answer(self.device, ok, text, data))
        self.accepted.answered(command.command_id)  # in the outbox: no longer open
