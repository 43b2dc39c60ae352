"""The ingest service: an MQTT session on each broker (``brokers.BrokerLinks``) that receives everything devices
send, and one writer thread that validates and stores it in batches.

Paho's network thread only enqueues (topic, payload, arrival time). The writer lets a batch gather for
``[ingest] batch_window_ms`` (up to ``batch_max`` messages) and writes it in one transaction, so a burst
costs one commit per batch rather than one per message. After each commit it publishes what changed to the
live hub and calls the hooks other parts registered with ``on(kind, callback)``. Snapshots and clip chunks go,
once their batch has committed, to the media thread (``media_writer``), so that events and heartbeats never
wait behind the object store.

Nothing a device sends can stop ingest: a message that breaks the contract, that the database refuses, or whose
hook fails is logged, kept in ``dead_letters`` with the reason, and the next message is processed.

Nothing a device was told is stored is lost: a message is acknowledged (PUBACK) only after the transaction that
stored or dead-lettered it has committed. When the store itself fails (``store_health.transient``: disk full,
I/O error, locked, the server gone), the messages are held unacknowledged and tried again, never
dead-lettered; a snapshot the media store refuses is kept in the database (``media_retry``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from kuzet.central import alerts
from kuzet.central.context import Central
from kuzet.central.ingest import announce, authority
from kuzet.central.ingest.batch import Incoming, Letter, Outcome, Refusal, Valid
from kuzet.central.ingest.brokers import BrokerLinks, broker_health
from kuzet.central.ingest.media_writer import MEDIA_KINDS, MediaWriter
from kuzet.central.ingest.metrics import Counters, Histograms
from kuzet.central.ingest.runtime import restore_garbage_collector, tune_garbage_collector, wire_time
from kuzet.central.ingest.session import BrokerSession
from kuzet.central.ingest.sqlite_writer import Checkpointer, writer_connection
from kuzet.central.ingest.store_health import (
    Outage,
    StoreDown,
    database_errors,
    storage_description,
    store_errors,
)
from kuzet.central.store import dead_letters, devices, portable
from kuzet.central.store.events import Received
from kuzet.shared import messages, topics
from kuzet.shared.messages import Envelope, InvalidMessage

log = logging.getLogger(__name__)

Hook = Callable[[Envelope, str], None]  # (decoded message, site)


# The reason a revoked device's messages are dead-lettered with.
REVOKED = "device revoked"
# /healthz calls ingest stalled when messages wait and nothing was committed for this long.
STALLED_AFTER_S = 30.0


class IngestService:
    def __init__(self, central: Central):
        self.central = central
        self.settings = central.config.ingest
        self._events = central.store.events  # the events repository of the store's engine
        self.counters = Counters()
        self.histograms = Histograms()
        self.last_commit_at: float | None = None  # time.time() of the latest commit (for latency measurement)
        self.started_at: float | None = None
        self.subscribed = threading.Event()  # set once the broker has acknowledged the subscription
        self._hooks: dict[str, list[Hook]] = defaultdict(list)
        self._in_transaction: list[Callable[[object, list[Valid]], None]] = []
        # SimpleQueue (in C) costs a fraction of queue.Queue per message; its bound is kept by _enqueue.
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None
        self._checkpointer: Checkpointer | None = None  # SQLite's WAL checkpoints (sqlite_writer)
        self._links: BrokerLinks | None = None
        self.sessions: list[BrokerSession] = []  # one per broker
        self._gc_thresholds: tuple[int, int, int] | None = None  # the collector's, before start()
        self.media = MediaWriter(self)  # snapshots and clips, on a thread of their own
        self.outage = Outage(
            central, alerts.say("the_database")
        )  # the store failing: messages held, /healthz 503

    # --- public -----------------------------------------------------------------------------------------

    def on(self, kind: str, callback: Hook) -> None:
        """Call ``callback(message, site)`` on the writer thread after each commit, for every valid message of
        ``kind`` (an up kind). For "event", only messages that changed the stored event (new, or newer seq).
        A callback must be quick; one that raises is logged and its message dead-lettered."""
        if kind not in topics.UP_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(topics.UP_KINDS)}")
        self._hooks[kind].append(callback)

    def on_stored(self, callback: Callable[[object, list[Valid]], None]) -> None:
        """Call ``callback(conn, items)`` inside each batch's transaction with the messages whose hooks will
        run: for a part in another process, which must get them exactly when they commit (central.inbox)."""
        self._in_transaction.append(callback)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def health(self) -> dict:
        """Whether ingest can do its job, for /healthz: ``problems`` is empty when it can."""
        now = time.time()
        mqtt_problems, mqtt = broker_health(
            self._links.links if self._links else [], self.central.config.mqtt
        )
        writer_alive = self._writer is not None and self._writer.is_alive()
        depth, queue_max = self.queue_depth, self.settings.queue_max
        last_progress = self.last_commit_at or self.started_at or now
        problems = []
        problems += [outage.problem for outage in (self.outage, self.media.outage) if outage.problem]
        problems += mqtt_problems
        if not writer_alive:
            problems.append("the ingest writer thread is not running: nothing is being stored")
        elif depth and now - last_progress > STALLED_AFTER_S:
            problems.append(f"{depth} messages wait and nothing was stored for {now - last_progress:.0f} s")
        if self._writer is not None and not self.media.alive:
            problems.append("the ingest media thread is not running: no snapshot or clip is being stored")
        if depth >= queue_max:
            problems.append(
                f"the ingest queue is full ({depth} of {queue_max}): the broker is holding messages"
            )
        return {
            "problems": problems,
            "mqtt": mqtt,
            "queue_depth": depth,
            "queue_max": queue_max,
            "writer_alive": writer_alive,
            "last_commit": wire_time(self.last_commit_at) if self.last_commit_at else None,
            "media_queue_depth": self.media.depth,
            "storage": storage_description(self.central.store, self.media.media),
        }

    def start(self, wait_s: float | None = 10.0) -> IngestService:
        config = self.central.config
        client_id = self.settings.client_id or f"central-{config.central.site}"
        # Manual acknowledgement: a message's PUBACK leaves only after the transaction that stored (or
        # dead-lettered) it has committed; until then the broker keeps it in central's persistent session and
        # sends it again if central dies.
        self._links = links = BrokerLinks(config.mqtt, client_id)
        subscription = topics.all_up()
        if self.settings.share_group:
            subscription = f"$share/{self.settings.share_group}/{subscription}"
        links.subscribe(subscription, self._enqueue)
        # Knowing every broker has the subscription is what makes "started" mean "nothing sent from now on is
        # missed" (/healthz reports it too).
        self.subscribed = links.subscribed
        # A broker that answers "no session" where central had one lost what it held: devices resend it.
        self.sessions = [
            BrokerSession(
                self.central, link, lambda i=i: links.last_commit[i], links.publish_everywhere
            ).start()
            for i, link in enumerate(links.links)
        ]
        self.media.start()
        self._writer = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._writer.start()
        if self.central.store.backend == "sqlite":
            self._checkpointer = Checkpointer(self.central.db, self._closing).start(self._writer)
        self.central.outbound.connect(self.publish)
        self._gc_thresholds = tune_garbage_collector()
        self.started_at = time.time()
        links.start()
        if wait_s is not None and not self.subscribed.wait(wait_s):
            log.warning(
                "ingest: not subscribed at %s after %.0f s; retrying in the background",
                ", ".join(config.mqtt.brokers),
                wait_s,
            )
        return self

    def stop(self) -> None:
        """Disconnect, store what is already queued, then stop the writer."""
        if self._links is not None:
            self._links.stop()
        self._closing.set()
        if self._writer is not None:
            self._writer.join(timeout=30)
            if self._writer.is_alive():
                log.error(
                    "ingest: the writer did not finish within 30 s; %d messages unstored", self.queue_depth
                )
        self.media.stop()  # after the writer: what its last batches handed over is stored too
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
        for session in self.sessions:
            session.stop()
        if self._gc_thresholds is not None:
            restore_garbage_collector(self._gc_thresholds)
            self._gc_thresholds = None

    # --- MQTT thread: enqueue only ------------------------------------------------------------------------

    def _enqueue(self, topic: str, payload: bytes, message, broker: int) -> None:
        self.counters.received += 1
        mid = message.mid if message.qos else 0
        incoming = Incoming(topic, payload, time.time(), mid, self._links.connection(broker), broker)
        # A full queue makes the network thread wait: the broker keeps the rest in our persistent session.
        if self._queue.qsize() >= self.settings.queue_max:
            log.warning("ingest: queue full (%d); holding the MQTT stream", self.settings.queue_max)
            while self._queue.qsize() >= self.settings.queue_max and not self._closing.is_set():
                time.sleep(0.01)
        self._queue.put(incoming)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self._links is not None
        if retain:  # kept for a device that is away: on every broker, wherever it comes back (a watchlist)
            self._links.publish_everywhere(topic, payload, retain=True)
        else:
            self._links.publish(topic, payload)

    # --- writer thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        if self.central.store.backend == "sqlite":
            tuned = writer_connection(self.central.db())
            connect = lambda: tuned  # noqa: E731
        else:  # the thread's connection: a new one once a server restart or failover broke the last
            connect = self.central.db
        held: list[Incoming] = []  # what the store could not take: tried again before anything new
        while True:
            batch = held or self._take_batch()
            if batch:
                try:
                    held = self._process(connect, batch)
                except Exception:  # a bug here must not end ingest; the messages are in the log
                    log.exception("ingest: batch of %d failed outside storage", len(batch))
                    self.acknowledge(batch)
                    held = []
                if held and self._closing.wait(self.outage.delay):
                    log.error("ingest: stopping with %d messages unstored (the broker keeps them)", len(held))
                    return
            elif self._closing.is_set():
                return

    def _take_batch(self) -> list[Incoming]:
        try:
            batch = [self._queue.get(timeout=0.5)]
        except queue.Empty:
            return []
        # Let a batch gather for a moment: while the writer sleeps, the MQTT thread has the interpreter to
        # itself, rather than both taking turns message by message.
        gather_s = batch[0].arrived + self.settings.batch_window_ms / 1000 - time.time()
        if gather_s > 0 and self._queue.qsize() < self.settings.batch_max:
            time.sleep(gather_s)
        while len(batch) < self.settings.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _process(self, connect: Callable, batch: list[Incoming]) -> list[Incoming]:
        """Store ``batch`` on ``connect()`` and acknowledge what is stored; returns the messages the store
        could not take now (``store_health.transient``), unacknowledged, to be tried again."""
        try:
            with store_errors():
                conn = connect()  # PostgreSQL: connecting fails while the server is away
            return self._try_process(conn, batch)
        except StoreDown as down:
            self.outage.failed(down.__cause__)
            return batch

    def _try_process(self, conn, batch: list[Incoming]) -> list[Incoming]:
        valid: list[Valid] = []
        refused: list[Refusal] = []
        for incoming in batch:
            try:
                message = messages.decode(incoming.topic, incoming.payload)
            except InvalidMessage as exc:
                refused.append((incoming, exc.reason, "invalid"))
                continue
            except Exception as exc:  # e.g. RecursionError from JSON nested thousands deep
                refused.append(
                    (incoming, f"payload could not be read: {type(exc).__name__}: {exc}", "invalid")
                )
                continue
            # decode() checked the topic: kuzet/v1/{site}/...
            site = incoming.topic.split("/", 3)[2]
            valid.append(Valid(incoming, site, message, incoming.received_at))
        with store_errors():  # the batch's devices read once: revoked, registered, latest heartbeat
            known = devices.of_batch(conn, {item.message.device for item in valid})
            valid = self._refuse_revoked(valid, known, refused)
            valid = authority.refuse_unauthorised(
                conn, valid, refused, self.settings.accept_unregistered, known
            )

        began = time.perf_counter()
        held: list[Incoming] = []  # what the store could not take now
        try:
            with store_errors(), portable.pipelined(conn), portable.transaction(conn):
                outcome = self._write(conn, valid, refused, known)
        except StoreDown:
            raise
        except Exception as exc:
            log.warning("ingest: batch of %d failed (%s); storing one by one", len(batch), exc)
            outcome, held = self._write_one_by_one(conn, valid, refused, known)
            valid = valid[: len(valid) - len(held)]
        self.last_commit_at = time.time()
        self.counters.batches += 1
        self.histograms.commit_seconds.observe(time.perf_counter() - began)
        self.histograms.batch_size.observe(len(batch))
        self.histograms.delay_seconds.observe(self.last_commit_at - batch[0].arrived)

        if not held:
            self.outage.recovered()
        arrival = {id(item): index for index, item in enumerate(valid)}
        self.finish(conn, outcome, sorted(outcome.hooks, key=lambda item: arrival[id(item)]))
        media = [item for item in valid if item.message.type in MEDIA_KINDS]
        self.media.submit(media)  # stored, shown and acknowledged on the media thread
        later = {id(item.incoming) for item in media} | {id(incoming) for incoming in held}
        self.acknowledge([incoming for incoming in batch if id(incoming) not in later])
        return held

    def finish(self, conn, outcome: Outcome, hooks: list[Valid]) -> None:
        """After a commit, the batch writer's or the media thread's: count it, show it live, call the hooks."""
        self.counters.add(outcome)
        try:
            self._announce(conn, outcome)
        except database_errors() as exc:  # reading rows back for the page; what they say is committed
            log.warning("ingest: could not show a batch live: %s", exc)
        self._call_hooks(conn, hooks)

    def acknowledge(self, batch: list[Incoming]) -> None:
        """PUBACK the batch's QoS 1 messages, each committed (stored or dead-lettered) by now, once what the
        batch showed live has left this process (``LiveHub.after_relayed``)."""
        self.central.hub.after_relayed(lambda: self._links.acknowledge(batch))

    def _refuse_revoked(
        self, valid: list[Valid], known: dict[str, devices.Known], refused: list[Refusal]
    ) -> list[Valid]:
        """Move the messages of revoked devices to ``refused``; returns the rest. (A stolen device keeps its
        certificate until the broker's CRL is reloaded, and a broker without TLS has no CRL at all.)"""
        kept = []
        for item in valid:
            device = known.get(item.message.device)
            if device is not None and device.revoked_at is not None:
                refused.append((item.incoming, REVOKED, "revoked"))
            else:
                kept.append(item)
        return kept

    def _write(
        self, conn, valid: list[Valid], refused: list[Refusal], known: dict[str, devices.Known]
    ) -> Outcome:
        """Everything but media, inside the caller's transaction (``known``: the batch's devices as read
        before it)."""
        outcome = Outcome()
        for incoming, reason, cause in refused:
            outcome.dead_letters.append(self.dead_letter(conn, incoming, reason, cause))

        # Each device's row once: last heard, online, newest heartbeat (not every heartbeat is shown live:
        # ingest/announce.py).
        heard = devices.heard_in((item.message, item.site, item.received_at) for item in valid)
        heartbeats = [item.message for item in valid if item.message.type == "status"]
        if heartbeats:
            before = {
                s.device: (known[s.device].status, known[s.device].status_at)
                for s in heartbeats
                if s.device in known
            }
            outcome.shown_devices |= announce.to_show(heartbeats, before)
        devices.record(conn, heard, known)
        for device in heard.keys() - known.keys():
            log.warning("ingest: device %r is not registered; listed as unregistered", device)
            outcome.changed_devices.add(device)

        event_batch = [
            Received(item.message, item.site, item.received_at)
            for item in valid
            if item.message.type == "event"
        ]
        if event_batch:
            applied = self._events.apply(conn, event_batch)
            outcome.duplicates += applied.duplicates
            outcome.timeline_only += applied.timeline_only
            outcome.stored += len(event_batch) - applied.duplicates
            changed = {id(r.message) for r in applied.changed}
            outcome.changed_events |= {r.message.event_id for r in applied.changed}
            # Shown again: whoever stored it first may have died before the pages were told.
            outcome.changed_events |= applied.redelivered
            outcome.created_rows |= applied.created_rows
            outcome.hooks += [v for v in valid if v.message.type == "event" and id(v.message) in changed]

        for item in valid:  # in arrival order
            kind = item.message.type
            if kind in ("status", "availability"):  # written with their device above
                outcome.stored += 1
                if kind == "availability":
                    outcome.changed_devices.add(item.message.device)
            elif kind == "event" or kind in MEDIA_KINDS:
                continue
            else:  # location, dispatch_state, evidence, command_result, live: ingest stores none of them
                outcome.handed_on += 1
            outcome.hooks.append(item)
        for callback in self._in_transaction:
            callback(conn, outcome.hooks)
        return outcome

    def _write_one_by_one(
        self, conn, valid: list[Valid], refused: list[Refusal], known: dict[str, devices.Known]
    ) -> tuple[Outcome, list[Incoming]]:
        """After a failed batch: each message in its own transaction, so one bad row costs only itself. Returns
        what was written, and the messages held (the store failed at one: it and those after it)."""
        outcome = Outcome()
        with (
            store_errors(),
            portable.transaction(conn),
        ):  # nothing is committed if this fails: the batch is held whole
            for incoming, reason, cause in refused:
                outcome.dead_letters.append(self.dead_letter(conn, incoming, reason, cause))
        for index, item in enumerate(valid):
            try:
                with store_errors(), portable.transaction(conn):
                    outcome.merge(self._write(conn, [item], [], known))
            except StoreDown as down:
                self.outage.failed(down.__cause__)
                return outcome, [later.incoming for later in valid[index:]]
            except Exception as exc:
                log.exception("ingest: could not store %s", item.incoming.topic)
                with store_errors(), portable.transaction(conn):
                    outcome.dead_letters.append(
                        self.dead_letter(conn, item.incoming, f"could not store: {exc}", "unstorable")
                    )
        return outcome, []

    def dead_letter(self, conn, incoming: Incoming, reason: str, cause: str) -> Letter:
        log.warning("ingest: dead-lettered %s: %s", incoming.topic, reason)
        keep = self.central.config.storage.dead_letter_payload_bytes
        letter_id = dead_letters.add(
            conn, incoming.topic, incoming.payload, reason, incoming.received_at, keep
        )
        return Letter(letter_id, incoming.topic, reason, cause)

    def _announce(self, conn, outcome: Outcome) -> None:
        hub = self.central.hub
        for letter in outcome.dead_letters:
            hub.publish("dead_letter", {"id": letter.id, "topic": letter.topic, "reason": letter.reason})
        if not hub.watched:
            return  # nobody is watching: skip reading the rows back
        for row in self._events.rows(conn, outcome.changed_events - outcome.created_rows.keys()):
            hub.publish("event", row)
        for row in outcome.created_rows.values():
            hub.publish("event", row)
        for row in devices.rows(conn, outcome.changed_devices | outcome.shown_devices):
            hub.publish("device", row)

    def _call_hooks(self, conn, items: list[Valid]) -> None:
        for item in items:
            message = item.message
            if message.type == "live":
                self.central.hub.publish("live", {"site": item.site, **message.model_dump(mode="json")})
            for hook in self._hooks.get(message.type, ()):
                try:
                    hook(message, item.site)
                except Exception as exc:
                    log.exception("ingest: %s hook %r failed on %s", message.type, hook, item.incoming.topic)
                    self.counters.hook_errors += 1
                    self.counters.dead_lettered("hook")
                    try:
                        with portable.transaction(conn):
                            letter = self.dead_letter(
                                conn, item.incoming, f"{message.type} hook failed: {exc!r}", "hook"
                            )
                    except (
                        database_errors()
                    ):  # the message is stored; only the note of the hook's failure is not
                        log.exception("ingest: could not dead-letter the failed hook's message")
                        continue
                    self.central.hub.publish(
                        "dead_letter", {"id": letter.id, "topic": letter.topic, "reason": letter.reason}
                    )
