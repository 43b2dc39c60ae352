"""The simulated cameras and badges of bench/scale.py: thousands of real MQTT connections from one process.

Each device is a paho client of its own (its own client id and its own site certificate, mutual TLS, a
persistent session) driven by one asyncio loop (paho's socket callbacks registered with the loop's epoll: no
thread and no select() per client). A device keeps what the real agents keep: an outbox of messages the broker
has not acknowledged (sent again on every new connection) and what the broker did acknowledge, for the run (the
agents keep it a day). It queues that again as the agents do: once connected to another broker after losing
one, what it delivered since ``lost_at - 10 s - 1.5 x keepalive``; on central's ``resend`` request (a broker
restarted and may have lost what it took before central had it), what it delivered since the request says
(edge/delivery, docs/brokers.md). Which broker it tries is ``shared.failover.BrokerChoice``, the devices' own
rules. What is worthless when late (availability, heartbeats,
positions) goes straight to the broker while connected and is never queued, as the agents send it
(edge/runtime/device.py: the heartbeat loop, ``send_now``). The messages are shared/messages.py's, on
shared/topics.py's topics, as the agents send them:

- every device: retained availability ("online", last will "offline"), a heartbeat (``status``) every
  ``heartbeat_s``;
- cameras: events at ``events_per_camera_hour`` (Poisson, ``burst`` times as often for a share of the run),
  each opened with its snapshot, closed 10-30 s later; a ``clip_share`` of them (the severe ones) carry a clip
  sent in 256 KiB chunks (unique bytes, so each clip is checked by its own SHA-256);
- badges: a position every ``position_s``; a dispatch is answered at once (``acknowledged``) and resolved
  ``resolve_after_s`` later, the duty moving with it.

Reports, once the run is over and the outboxes are empty: what was sent (message ids and publish times),
the dispatches received, the clips, and when each device was connected where (failover times).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import os
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from kuzet.edge.runtime.device import FAILOVER_RESEND_MARGIN_S
from kuzet.shared import ids, messages, timeutil, topics
from kuzet.shared.failover import BrokerChoice
from kuzet.shared.mqtt import parse_url

log = logging.getLogger("scale.devices")
CLIP_CHUNK = messages.CLIP_CHUNK_BYTES
DRAIN_S = 120  # after its load, how long a process waits for its devices' outboxes to empty


@dataclass
class Plan:
    """What one simulator process runs (picklable: handed to a spawned process)."""

    site: str
    brokers: list[str]
    ca: str
    cert_dir: str  # <device>.pem: its key and certificate, as the bundle's device.key and device.crt
    devices: list[tuple[str, str, float, float]]  # (id, kind, lat, lon)
    seconds: float
    heartbeat_s: float = 10.0
    position_s: float = 5.0
    events_per_camera_hour: float = 12.0
    burst: tuple[float, float, float] = (0.1, 0.2, 3.0)  # from, to (shares of the run), rate multiplier
    patrol_share: float = 0.1  # events of a type and severity routing sends a patrol to
    clip_share: float = 0.2
    clip_bytes: int = 384 * 1024
    snapshot_bytes: int = 40_000
    resolve_after_s: float = 20.0
    keepalive_s: int = 30
    failover_after_s: float = 10.0
    return_to_primary_s: float = 60.0
    seed: int = 7


@dataclass
class Report:
    sent: dict[str, float] = field(default_factory=dict)  # event message id -> publish time (time.time())
    opened: dict[str, float] = field(default_factory=dict)  # event id -> its first message's publish time
    opening: dict[str, str] = field(default_factory=dict)  # event id -> its first message's id
    # (dispatch, event, when central made it (its ts), got at)
    dispatches: list[tuple[str, str | None, float, float]] = field(default_factory=list)
    clips: dict[str, str] = field(default_factory=dict)  # clip id -> sha256
    counts: collections.Counter = field(default_factory=collections.Counter)  # messages sent by kind
    connected: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # device -> (when, broker)
    unacked_at_end: int = 0
    # Event messages still in a device's outbox when the run ended: no broker accepted them (the device was
    # still reconnecting after the outage), so central could not have lost them; a device keeps them.
    undelivered: list[str] = field(default_factory=list)
    clips_undelivered: list[str] = field(default_factory=list)  # a chunk of each still in its camera's outbox
    errors: int = 0
    # Each event message's trail, to tell where a lost one went: its device, each broker acknowledgement (when,
    # which broker: 0 the primary), and each device's resend requests (when heard, their ``since``).
    owners: dict[str, str] = field(default_factory=dict)
    acks: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    resends: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # Each device's last connection at the end: when its subscription was acknowledged (None: never), and how
    # many messages it received on it.
    downs: dict[str, tuple[float | None, int]] = field(default_factory=dict)
    # How late the process's loop woke from a 0.5 s sleep, every 0.5 s of the load: a device's message waits
    # that long before paho even writes it, so it is part of every latency measured from ``sent``.
    loop_lag_ms: list[float] = field(default_factory=list)
    # Told to stop before its load and drain were done: the machine could not run the devices in time (the
    # bench waits that long, then takes what each process has); the figures then show an overloaded machine.
    halted: bool = False


class Device:
    """One device's link: a paho client per connection, an outbox, the broker choice."""

    def __init__(self, sim: Simulator, name: str, kind: str, lat: float, lon: float):
        self.sim, self.name, self.kind, self.lat, self.lon = sim, name, kind, lat, lon
        plan = sim.plan
        self.choice = BrokerChoice(plan.brokers, plan.failover_after_s, plan.return_to_primary_s)
        self.context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=plan.ca)
        self.context.load_cert_chain(str(Path(plan.cert_dir) / f"{name}.pem"))
        self.client: paho.Client | None = None
        self.handshake: asyncio.Task | None = None  # the connection being made (``client`` is still None)
        self.connected = False
        self.lost_at: float | None = None
        # Connecting to another broker after losing one (when it was lost), until connected: as the agents'
        # link keeps it (shared/mqtt.py), so a failed handshake at the new broker does not forget the move.
        self.moved_after_loss_at: float | None = None
        self.resends_handled: set[str] = set()
        self.subscribed_at: float | None = None  # this connection's subscription acknowledged
        self.received = 0  # messages received on this connection
        self.outbox: dict[str, tuple[str, bytes, bool]] = {}  # message id -> (topic, payload, retain)
        self.inflight: dict[int, str] = {}  # paho mid -> message id, this connection only
        self.delivered: collections.deque[tuple[float, str, str, bytes]] = collections.deque()
        self.duty = "available"
        self.started = time.monotonic()

    # --- the connection -----------------------------------------------------------------------------------

    def connect(self) -> None:
        """One attempt at the broker the rules say. The TCP and TLS handshakes run on the loop without blocking
        it: a device waiting for a busy broker's answer must not hold up the other devices' keepalives, as in
        the field one device's handshake never holds up another's (blocking, a storm of reconnects starved
        every device of its process and the brokers cut them off for silence, docs/scale.md)."""
        if self.connecting:
            return
        self.sim.handshakes += 1
        before = self.choice.index
        url = self.choice.connecting()
        if self.choice.index != before and self.lost_at is not None:
            self.moved_after_loss_at = self.lost_at
        # Held: the loop keeps only a weak reference to a task.
        self.handshake = self.sim.loop.create_task(self._connect(parse_url(url)))

    @property
    def connecting(self) -> bool:
        return self.handshake is not None and not self.handshake.done()

    async def _connect(self, address) -> None:
        try:
            sock = await tls_handshake(address.host, address.port, self.context)
        except (OSError, ssl.SSLError, TimeoutError):
            self.choice.lost()
            self.sim.retry(self)
            return
        finally:
            self.sim.handshakes -= 1
        if self.sim.stopping:
            sock.close()
            return
        client = _HandshakenClient(
            sock,
            CallbackAPIVersion.VERSION2,
            client_id=self.name,
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        client.tls_set_context(self.context)
        client.max_inflight_messages_set(1000)
        client.will_set(*self._availability("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.sim.attach(client)
        self.client = client
        try:
            client.connect(address.host, address.port, keepalive=self.sim.plan.keepalive_s)
        except (OSError, ssl.SSLError):
            self._drop(client)
            self.choice.lost()
            self.sim.retry(self)

    def _drop(self, client: paho.Client) -> None:
        self.sim.detach(client)
        client._reset_sockets()  # paho 2.2: its socket pair is otherwise closed only on garbage collection
        if self.client is client:
            self.client = None

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.sim.report.errors += 1
            log.error("%s refused by %s: %s", self.name, self.choice.url, reason_code)
            return
        sock = client.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.moved_after_loss_at is not None:  # what the lost broker took shortly before it went
            self._redeliver(
                self.moved_after_loss_at - FAILOVER_RESEND_MARGIN_S - 1.5 * self.sim.plan.keepalive_s
            )
            self.moved_after_loss_at = None
        self.connected = True
        self.lost_at = None
        self.choice.connected()
        self.sim.report.connected.setdefault(self.name, []).append((time.time(), self.choice.index))
        client.subscribe(topics.device_down(self.sim.plan.site, self.name), qos=1)
        self.subscribed_at, self.received = None, 0
        self.inflight.clear()
        client.publish(*self._availability("online"), qos=1, retain=True)
        for msg_id, (topic, payload, retain) in list(self.outbox.items()):
            self._publish(msg_id, topic, payload, retain)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self.client:
            return
        self.connected = False
        self.client = None
        # Not from within paho's callback: closing the socket calls back into paho, which holds its lock now.
        self.sim.loop.call_soon(self._drop, client)
        if reason_code.value != 0:
            self.lost_at = time.time()
        self.choice.lost()
        if not self.sim.stopping:
            self.sim.retry(self)

    def leave_for_primary(self) -> None:
        """On a standby whose primary answers again: a clean DISCONNECT (no last will), then the primary."""
        client = self.client
        if client is None or not self.connected:
            return
        self.connected = False
        self.client = None  # what paho calls back with while it disconnects is no longer ours
        client.disconnect()
        client.loop_write()
        self._drop(client)
        self.choice.back_to_primary()
        self.connect()

    # --- sending --------------------------------------------------------------------------------------------

    def _availability(self, state: str) -> tuple[str, bytes]:
        message = messages.Availability(device=self.name, state=state)
        return topics.up(self.sim.plan.site, self.name, "availability"), messages.encode(message)

    def send(self, message: messages.Envelope) -> None:
        topic = topics.up(self.sim.plan.site, self.name, message.type)
        self._send(topic, messages.encode(message), message_id=message.id)
        self.sim.report.counts[message.type] += 1
        if message.type == "event":
            self.sim.report.owners[message.id] = self.name

    def send_now(self, message: messages.Envelope) -> None:
        """Straight to the broker and only while connected: never queued, never sent again after a move."""
        if self.connected:
            self.client.publish(
                topics.up(self.sim.plan.site, self.name, message.type), messages.encode(message), 1
            )
            self.sim.write_now(self.client)
            self.sim.report.counts[message.type] += 1

    def _send(self, topic: str, payload: bytes, retain: bool = False, message_id: str | None = None) -> None:
        msg_id = message_id or ids.new_id()
        self.outbox[msg_id] = (topic, payload, retain)
        if self.connected:
            self._publish(msg_id, topic, payload, retain)

    def _publish(self, msg_id: str, topic: str, payload: bytes, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            self.inflight[info.mid] = msg_id
            self.sim.write_now(self.client)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        msg_id = self.inflight.pop(mid, None)
        entry = self.outbox.pop(msg_id, None) if msg_id else None
        if entry is not None:
            now = time.time()
            self.delivered.append((now, msg_id, entry[0], entry[1]))
            if msg_id in self.sim.report.owners:
                self.sim.report.acks.setdefault(msg_id, []).append((now, self.choice.index))

    def _redeliver(self, since: float) -> None:
        """Queue again what was delivered at or after ``since`` (edge/delivery/outbox.py ``redeliver``): out of
        the delivered record, to the end of the outbox; sent now if connected (else on connecting)."""
        again = []
        while self.delivered and self.delivered[-1][0] >= since:
            again.append(self.delivered.pop())
        for _, msg_id, topic, payload in reversed(again):
            if msg_id not in self.outbox:
                self.outbox[msg_id] = (topic, payload, False)
                if self.connected:
                    self._publish(msg_id, topic, payload, False)
        self.sim.report.counts["redelivered"] += len(again)

    # --- what central sends --------------------------------------------------------------------------------

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subscribed_at = time.time()

    def _on_message(self, client, userdata, msg) -> None:
        self.received += 1
        if not msg.topic.endswith(("/dispatch", "/resend")):
            return
        try:
            message = messages.decode(msg.topic, msg.payload)
        except messages.InvalidMessage:
            self.sim.report.errors += 1
            return
        if isinstance(message, messages.Resend):  # retained: it comes back on every connection, handled once
            if message.id not in self.resends_handled:
                self.resends_handled.add(message.id)
                since = message.since.timestamp()
                self.sim.report.resends.setdefault(self.name, []).append((time.time(), since))
                self._redeliver(since)
        elif self.kind == "badge":
            self.sim.dispatch_arrived(self, message)


class Simulator:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.loop = asyncio.get_event_loop()
        self.report = Report()
        self.stopping = False
        self.rng = random.Random(plan.seed)
        self.devices = [Device(self, *spec) for spec in plan.devices]
        self.cameras = [d for d in self.devices if d.kind == "camera"]
        self.snapshot = _snapshot_jpeg(plan.snapshot_bytes)
        self.snapshot_sha256 = hashlib.sha256(self.snapshot).hexdigest()
        self.snapshot_base64 = messages.to_base64(self.snapshot)  # the same picture for every event: once
        self.answered: set[str] = set()
        self.in_paho = False  # inside a paho call that may call us back (``write_now``)
        self.handshakes = 0  # devices' connections being made

    # --- paho on the loop ------------------------------------------------------------------------------------

    def attach(self, client: paho.Client) -> None:
        def readable() -> None:
            with self.inside_paho():
                client.loop_read()
                sock = client.socket()
                while sock is not None and getattr(sock, "pending", lambda: 0)():  # TLS records decrypted
                    client.loop_read()
                    sock = client.socket()

        def write_rest(sock) -> None:
            if client.socket() is sock and client.want_write():
                client.loop_write()
                # The socket is full: the loop writes the rest when it drains (unless that write lost the
                # connection: paho closed the socket).
                if client.want_write() and client.socket() is sock and sock.fileno() != -1:
                    self.loop.add_writer(sock, client.loop_write)

        client.on_socket_open = lambda c, u, sock: self.loop.add_reader(sock, readable)
        client.on_socket_close = lambda c, u, sock: self.loop.remove_reader(sock)
        # paho asks for the socket's writer with each message, and ``write_now`` has mostly written it by the
        # time the loop comes round: adding and removing the writer each time cost a tenth of the process.
        client.on_socket_register_write = lambda c, u, sock: self.loop.call_soon(write_rest, sock)
        client.on_socket_unregister_write = lambda c, u, sock: self.loop.remove_writer(sock)

    @contextlib.contextmanager
    def inside_paho(self):
        self.in_paho = True
        try:
            yield
        finally:
            self.in_paho = False

    def write_now(self, client: paho.Client) -> None:
        """Write what was just published, as a device's own MQTT thread does, rather than when the loop next
        gets round to the socket: under load that wait was the simulator's lag, and it counted as central's
        latency (which is measured from the publish). Not from inside paho's callbacks (it holds its locks
        there): what a callback publishes is written by the loop."""
        if not self.in_paho:
            client.loop_write()

    def detach(self, client: paho.Client) -> None:
        sock = client.socket()
        if sock is not None:
            self.loop.remove_reader(sock)
            self.loop.remove_writer(sock)

    def retry(self, device: Device) -> None:
        # As Link's paho backoff with a standby: attempts at least every failover_after_s / 2.
        delay = min(1.0, self.plan.failover_after_s / 2) * (0.5 + self.rng.random())
        self.loop.call_later(delay, lambda: device.client is None and not self.stopping and device.connect())

    async def housekeeping(self) -> None:
        """Keepalives (paho's loop_misc) and the standby's check for the primary, for every device."""
        primary = parse_url(self.plan.brokers[0])
        while not self.stopping:
            await asyncio.sleep(1.0)
            primary_up: bool | None = None
            for device in self.devices:
                if device.client is not None:
                    with self.inside_paho():  # loop_misc may call on_disconnect
                        device.client.loop_misc()
                if device.connected and device.choice.primary_check_due():
                    if primary_up is None:
                        primary_up = _answers(primary.host, primary.port)
                    if primary_up:
                        device.leave_for_primary()
                        await asyncio.sleep(0)

    # --- the run --------------------------------------------------------------------------------------------

    async def connect_all(self, at_once: int = 50) -> int:
        for device in self.devices:
            while self.handshakes >= at_once:  # the process's devices switched on in turn, not all at once
                await asyncio.sleep(0.01)
            device.connect()
        deadline = time.monotonic() + 120
        while sum(d.connected for d in self.devices) < len(self.devices) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return sum(d.connected for d in self.devices)

    async def run(self) -> None:
        plan = self.plan
        begin = time.monotonic()
        tasks = [
            asyncio.ensure_future(self._every(d, plan.heartbeat_s, self._heartbeat)) for d in self.devices
        ]
        tasks += [
            asyncio.ensure_future(self._every(d, plan.position_s, self._position))
            for d in self.devices
            if d.kind == "badge"
        ]
        tasks.append(asyncio.ensure_future(self._watch_lag()))
        if self.cameras:
            await self._events(begin)
        else:
            await self._until_the_end(begin)
        for task in tasks:
            task.cancel()

    async def _watch_lag(self, every_s: float = 0.5) -> None:
        while True:
            asleep = time.monotonic()
            await asyncio.sleep(every_s)
            self.report.loop_lag_ms.append((time.monotonic() - asleep - every_s) * 1000)

    async def drain(self, timeout_s: float) -> None:
        """Until every outbox is empty (what was queued reached a broker), or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while any(d.outbox for d in self.devices) and time.monotonic() < deadline and not self.report.halted:
            await asyncio.sleep(0.2)
        self.report.unacked_at_end = sum(len(d.outbox) for d in self.devices)
        self.report.downs = {d.name: (d.subscribed_at, d.received) for d in self.devices}
        self.report.undelivered = [m for d in self.devices for m in d.outbox if m in self.report.sent]
        self.report.clips_undelivered = sorted(
            {
                json.loads(payload)["clip_id"]
                for d in self.devices
                for topic, payload, _ in d.outbox.values()
                if topic.endswith("/clip")
            }
        )
        self.stopping = True
        for device in self.devices:
            client, device.client = device.client, None
            if client is not None:
                client.disconnect()
                client.loop_write()
                device._drop(client)

    async def _every(self, device: Device, period_s: float, what) -> None:
        await asyncio.sleep(self.rng.uniform(0, period_s))  # devices were not all switched on at once
        while True:
            what(device)
            await asyncio.sleep(period_s)

    def _heartbeat(self, device: Device) -> None:
        device.send_now(
            messages.Status(
                device=device.name,
                kind=device.kind,
                software_version="scale-bench",
                uptime_s=time.monotonic() - device.started,
                outbox_depth=len(device.outbox),
                duty=device.duty if device.kind == "badge" else None,
            )
        )

    def _position(self, device: Device) -> None:
        device.lat += self.rng.uniform(-1e-4, 1e-4)  # walking
        device.lon += self.rng.uniform(-1e-4, 1e-4)
        device.send_now(
            messages.Location(
                device=device.name,
                position=messages.GeoPoint(lat=device.lat, lon=device.lon),
                accuracy_m=5.0,
                fix="gps",
                duty=device.duty,
            )
        )

    async def _events(self, begin: float) -> None:
        plan = self.plan
        rate = len(self.cameras) * plan.events_per_camera_hour / 3600
        at = 0.0
        while True:
            in_burst = plan.burst[0] * plan.seconds <= at < plan.burst[1] * plan.seconds
            at += self.rng.expovariate(rate * (plan.burst[2] if in_burst else 1))
            if at >= plan.seconds or self.report.halted:
                break
            await asyncio.sleep(max(0.0, begin + at - time.monotonic()))
            self._open_event(self.rng.choice(self.cameras))
        await self._until_the_end(begin)

    async def _until_the_end(self, begin: float) -> None:
        """Until the load's time is up, or the bench halts it."""
        end = begin + self.plan.seconds
        while not self.report.halted and time.monotonic() < end:
            await asyncio.sleep(min(1.0, end - time.monotonic()))

    async def watch_halt(self, halt) -> None:
        """Stop the load and the draining once the bench sets ``halt`` (a multiprocessing Event)."""
        while not halt.is_set():
            await asyncio.sleep(1.0)
        self.report.halted = True
        log.warning("halted by the bench: %d devices, the load or the draining unfinished", len(self.devices))

    def _open_event(self, camera: Device) -> None:
        plan, rng = self.plan, self.rng
        patrol = rng.random() < plan.patrol_share
        with_clip = rng.random() < plan.clip_share
        clip = os.urandom(plan.clip_bytes) if with_clip else b""
        event = messages.Event(
            device=camera.name,
            event_id=ids.new_id(),
            seq=0,
            state="open",
            event_type="loitering" if patrol else "zone_enter",
            severity="high" if patrol else "low",
            label="person",
            score=0.87,
            started_at=timeutil.utc_now() - timedelta(seconds=3),
            zone="square",
            track_ids=[rng.randrange(1, 10_000)],
            box=messages.Box(x=100, y=120, w=40, h=90),
            frame_size=(1280, 720),
            location=messages.GeoPoint(lat=camera.lat, lon=camera.lon),
            snapshot_sha256=self.snapshot_sha256,
            clip_id=ids.new_id() if with_clip else None,
        )
        now = time.time()
        self.report.sent[event.id] = now
        self.report.opened[event.event_id] = now
        self.report.opening[event.event_id] = event.id
        camera.send(event)
        # Built without pydantic's validation, which decodes the base64 again: the simulators share the two
        # cores with central, and what goes on the wire is the same JSON.
        camera.send(
            messages.Snapshot.model_construct(
                device=camera.name,
                event_id=event.event_id,
                sha256=self.snapshot_sha256,
                width=1280,
                height=720,
                data=self.snapshot_base64,
            )
        )
        if with_clip:
            self._send_clip(camera, event, clip)
        self.loop.call_later(rng.uniform(10, 30), self._close_event, camera, event)

    def _send_clip(self, camera: Device, event: messages.Event, clip: bytes) -> None:
        sha256 = hashlib.sha256(clip).hexdigest()
        self.report.clips[event.clip_id] = sha256
        count = -(-len(clip) // CLIP_CHUNK)
        for index in range(count):
            data = clip[index * CLIP_CHUNK : (index + 1) * CLIP_CHUNK]
            camera.send(
                messages.ClipChunk.model_construct(  # unvalidated, as the snapshot above
                    device=camera.name,
                    clip_id=event.clip_id,
                    event_id=event.event_id,
                    index=index,
                    count=count,
                    size=len(clip),
                    sha256=sha256,
                    chunk_sha256=hashlib.sha256(data).hexdigest(),
                    content_type="video/mp4",
                    data=messages.to_base64(data),
                )
            )

    def _close_event(self, camera: Device, opened: messages.Event) -> None:
        if self.stopping:
            return
        now = timeutil.utc_now()
        closed = opened.model_copy(
            update={"id": ids.new_id(), "ts": now, "seq": 1, "state": "closed", "ended_at": now}
        )
        self.report.sent[closed.id] = time.time()
        camera.send(closed)

    def dispatch_arrived(self, badge: Device, dispatch: messages.Dispatch) -> None:
        if dispatch.dispatch_id in self.answered:  # the inbox keeps each dispatch once
            return
        self.answered.add(dispatch.dispatch_id)
        self.report.dispatches.append(
            (dispatch.dispatch_id, dispatch.event_id, dispatch.ts.timestamp(), time.time())
        )
        self._answer(badge, dispatch.dispatch_id, "acknowledged")
        badge.duty = "en_route"
        self.loop.call_later(self.plan.resolve_after_s, self._resolve, badge, dispatch.dispatch_id)

    def _resolve(self, badge: Device, dispatch_id: str) -> None:
        if not self.stopping:
            self._answer(badge, dispatch_id, "resolved")
            badge.duty = "available"

    def _answer(self, badge: Device, dispatch_id: str, state: str) -> None:
        badge.send(
            messages.DispatchState(
                device=badge.name,
                dispatch_id=dispatch_id,
                state=state,
                position=messages.GeoPoint(lat=badge.lat, lon=badge.lon),
                note="scale bench" if state == "resolved" else None,
            )
        )


class _HandshakenClient(paho.Client):
    """paho's client on a socket whose TLS handshake is already done (``tls_handshake``): paho 2.2 makes its
    own connection, blocking, in ``_create_socket``."""

    def __init__(self, sock: ssl.SSLSocket, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._handshaken: ssl.SSLSocket | None = sock

    def _create_socket(self):
        sock, self._handshaken = self._handshaken, None
        if sock is None:
            raise OSError("this client's connection was used: a new attempt makes a new client")
        return sock


async def tls_handshake(
    host: str, port: int, context: ssl.SSLContext, timeout_s: float = 5.0
) -> ssl.SSLSocket:
    """A TCP connection and its TLS handshake, on the running loop, each wait at most ``timeout_s`` (paho's
    connect timeout)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout_s):
            await loop.sock_connect(sock, (host, port))
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                await _ready(loop.add_reader, loop.remove_reader, tls, timeout_s)
            except ssl.SSLWantWriteError:
                await _ready(loop.add_writer, loop.remove_writer, tls, timeout_s)
    except BaseException:
        sock.close()
        raise


async def _ready(add, remove, sock, timeout_s: float) -> None:
    ready = asyncio.get_running_loop().create_future()
    add(sock, lambda: ready.done() or ready.set_result(None))
    try:
        async with asyncio.timeout(timeout_s):
            await ready
    finally:
        remove(sock)


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def _snapshot_jpeg(size: int) -> bytes:
    """A JPEG of about ``size`` bytes (noise compresses badly, as a street scene at night does)."""
    import cv2
    import numpy as np

    side = 64
    while True:
        image = np.random.default_rng(1).integers(0, 255, (side, side * 16 // 9, 3), dtype=np.uint8)
        data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
        if len(data) >= size or side > 1000:
            return data
        side = int(side * 1.25)


def run_process(plan: Plan, ready, go, halt, results) -> None:
    """A spawned process's body: connect, say how many are connected, wait for ``go``, run, report (at once
    when ``halt`` is set, with what it has)."""
    import resource

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s devices %(message)s")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    simulator = Simulator(plan)
    keeping = loop.create_task(simulator.housekeeping())
    halting = loop.create_task(simulator.watch_halt(halt))
    connected = loop.run_until_complete(simulator.connect_all())
    ready.put(connected)
    while not go.wait(0.05):
        loop.run_until_complete(asyncio.sleep(0.2))  # keep answering the brokers while others connect
    loop.run_until_complete(simulator.run())
    log.warning(
        "%d devices: load sent; draining %d unacknowledged",
        len(plan.devices),
        sum(len(d.outbox) for d in simulator.devices),
    )
    loop.run_until_complete(simulator.drain(timeout_s=DRAIN_S))
    log.warning("drained: %d left", simulator.report.unacked_at_end)
    keeping.cancel()
    halting.cancel()
    report = simulator.report
    report.counts = dict(report.counts)
    results.put(report)
