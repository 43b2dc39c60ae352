"""What every device runs around its own work: the MQTT link, delivery (the durable outbox, its publisher and
the clip spool), availability (retained "online", "offline" as the last will and on a clean stop), the
heartbeat (the device's status every few seconds), central's commands (``commands.CommandRegistry``) and
signed updates (``updates.UpdateCommands``).

A device builds one ``DeviceRuntime``, registers its command handlers and a status provider, then ``start``s
it; what it sends goes through ``deliver`` / ``transaction`` (durable, QoS 1: the outbox's one door is the
publisher) or ``send_now`` (live frames, positions: worthless when late, sent only while connected). Central's
``resend`` (the broker lost what it had acknowledged) queues again what the outbox delivered since then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kuzet.edge.delivery import ClipSpool, DeliverySettings, Outbox, Publisher
from kuzet.edge.delivery.outbox import PRIORITY_RESULT, Writes
from kuzet.edge.runtime.commands import CommandRegistry, RejectedLog
from kuzet.shared import messages, topics
from kuzet.shared.ids import new_id
from kuzet.shared.messages import (
    Availability,
    ClipRequest,
    Command,
    CommandResult,
    Envelope,
    InvalidMessage,
    Resend,
    Status,
)
from kuzet.shared.mqtt import Link

log = logging.getLogger(__name__)

MAX_COUNTERS = 40  # what a Status message carries
# After a failover, what the lost broker acknowledged this long before the loss was noticed is sent again:
# it may have died (or been cut off) before passing it on to central. Plus 1.5 keep-alives, the longest it
# takes to notice a broker that went silent. Central stores each message id once.
FAILOVER_RESEND_MARGIN_S = 10.0
TICK_S = 0.2


class DeviceRuntime:
    def __init__(
        self,
        *,
        kind: str,
        site: str,
        device: str,
        mqtt,
        storage: Path,
        spool_dir: Path,
        spool_limits: dict,
        status: Callable[[], Status],
        heartbeat_s: Callable[[], float],
        delivery: DeliverySettings | None = None,
    ):
        self.kind, self.site, self.device = kind, site, device
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.availability_topic = self.topic("availability")
        # A persistent session: commands, dispatches and clip requests sent while the device is offline wait
        # at the broker.
        self.link = Link(
            mqtt,
            device,
            will=(self.availability_topic, self._availability("offline")),
            persistent_session=True,
        )
        self.outbox = Outbox(self.storage / "outbox.db")
        self.spool = ClipSpool(spool_dir, self.outbox, site=site, device=device, **spool_limits)
        self.publisher = Publisher(
            self.outbox, self.link, delivery, resolvers={"clip": self.spool.chunk_payload}
        )
        self.commands = CommandRegistry(
            kind,
            device,
            self._send_result,
            count=self.outbox.add,
            rejected=RejectedLog(self.storage / "rejected.jsonl"),
            accepted_file=self.storage / "accepted_commands.json",
        )
        self.link.on_failover.append(self._failed_over)
        self.receivers: dict[type, Callable[[Envelope], None]] = {}  # other messages from central, by type
        self.status = status
        self.heartbeat_s = heartbeat_s
        self.housekeeping: list[Callable[[], None]] = []  # run before each heartbeat (e.g. a disk quota)
        self.on_online: list[Callable[[], None]] = []  # run each time the link (re)connects
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self, wait_s: float | None = 10.0) -> DeviceRuntime:
        self.link.subscribe(topics.device_down(self.site, self.device), self._on_down)
        self.publisher.start()
        self.link.start(wait_s)
        self.commands.start()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._heartbeat.start()
        return self

    def stop(self, drain_s: float = 2.0) -> None:
        """Stop the threads, deliver what is in flight for up to ``drain_s``, say "offline" and close."""
        self._stop.set()
        self.commands.stop()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        self.publisher.stop(drain_s=drain_s)
        self.link.stop(final=(self.availability_topic, self._availability("offline")))
        self.outbox.close()

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` while connected for the outbox to empty (what is left stays on disk)."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth() and time.monotonic() < deadline and self.connected:
            time.sleep(0.05)

    # --- sending --------------------------------------------------------------------------------------------

    def topic(self, kind: str) -> str:
        return topics.up(self.site, self.device, kind)

    def deliver(self, kind: str, message: Envelope, priority: int, count: str | None = None) -> None:
        """Through the durable outbox: kept across a lost link or a reboot until the broker acknowledges it."""
        self.publisher.enqueue(
            self.topic(kind), messages.encode(message), kind=kind, priority=priority, count=count
        )

    @contextmanager
    def transaction(self) -> Iterator[Writes]:
        """Several messages, or messages and the state that goes with them, made durable at once."""
        with self.publisher.transaction() as tx:
            yield tx

    def put(self, tx: Writes, kind: str, message: Envelope, priority: int) -> None:
        """Queue ``message`` in the transaction ``tx`` (from ``transaction``)."""
        tx.put(self.topic(kind), messages.encode(message), kind=kind, priority=priority)

    def send_now(self, kind: str, message: Envelope, qos: int = 0) -> None:
        """Straight to MQTT, and only while connected: for what is worthless when late."""
        if self.connected:
            self.link.publish(self.topic(kind), messages.encode(message), qos=qos)

    def _send_result(self, result: CommandResult) -> None:
        self.deliver("command_result", result, PRIORITY_RESULT)

    def counters(self, extra: dict[str, int] | None = None) -> dict[str, int]:
        """The status counters: the outbox's durable ones, then ``extra``, then the publisher's (``outbox_*``)."""
        counters = {k[:40]: v for k, v in self.outbox.counters().items()}
        counters.update({k[:40]: v for k, v in (extra or {}).items()})
        counters.update({f"outbox_{k}": v for k, v in self.publisher.stats.items()})
        return dict(list(counters.items())[:MAX_COUNTERS])

    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 1)

    # --- from central ---------------------------------------------------------------------------------------

    def _on_down(self, topic: str, payload: bytes) -> None:
        """On paho's thread: decode, then hand each message to its place; nothing slow happens here."""
        try:
            message = messages.decode(topic, payload)
        except InvalidMessage as exc:
            self.commands.reject(topic, payload, exc.reason)
            return
        if isinstance(message, Command):
            self.commands.submit(message)
        elif isinstance(message, ClipRequest):
            if self.spool.handle_request(message):
                self.publisher.wake()
        elif isinstance(message, Resend):
            # The broker lost what it had acknowledged: queue again what was delivered since (once per id).
            self.publisher.resend(message.id, message.since.timestamp())
        elif type(message) in self.receivers:
            self.receivers[type(message)](message)
        else:
            log.info("ignored a %s message: a %s does not take them", message.type, self.kind)

    def _failed_over(self, left: str, lost_at: float) -> None:
        """On paho's thread: connected to another broker after losing ``left``; queue again (on the publisher's
        thread) what ``left`` acknowledged shortly before it was lost."""
        since = lost_at - FAILOVER_RESEND_MARGIN_S - 1.5 * self.link.settings.keepalive_s
        log.warning(
            "%s: moved from %s to %s; sending again what %s took since then",
            self.device,
            left,
            self.link.url,
            left,
        )
        self.publisher.resend(f"failover-{new_id()}", since)

    # --- availability and heartbeat -------------------------------------------------------------------------

    def _availability(self, state: str) -> bytes:
        return messages.encode(Availability(device=self.device, state=state))

    def _heartbeat_loop(self) -> None:
        was_connected = False
        next_beat = 0.0
        while not self._stop.is_set():
            connected = self.connected
            try:
                if connected and not was_connected:
                    # The broker may have published our last will while we were away: say we are back.
                    self.link.publish(
                        self.availability_topic, self._availability("online"), qos=1, retain=True
                    )
                    next_beat = 0.0
                    for hook in self.on_online:
                        hook()
                was_connected = connected
                if connected and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat_s()
                    for task in self.housekeeping:
                        task()
                    self.link.publish(self.topic("status"), messages.encode(self.status()), qos=1)
            except Exception:  # the heartbeat must keep beating
                log.exception("%s: heartbeat failed", self.device)
            self._stop.wait(TICK_S)
