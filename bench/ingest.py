"""Ingest benchmark: N simulated devices publish events at R per second (all together) through a real
Mosquitto into one central process as ``kuzet central run`` composes it (ingest, routing with its hooks,
device commands, retention, and the web page serving a live stream to a subscribed page); reports what was
stored and the publish-to-commit latency.

    python bench/ingest.py --devices 50 --rate 5000 --seconds 20 --json
    python bench/ingest.py --store-url postgresql://kuzet@127.0.0.1:5432/bench --json   # central on PostgreSQL

Central's process is alone with its own threads, as in production: the devices run in one child process and
the page reading the live stream (server-sent events, over HTTP with an operator's token) in another.
``--patrol-share`` of the events are of a type and severity routing sends a patrol to (there are no patrol
units, so each waits for one and raises an alert); the rest only need storing and showing.

Latency is the event's ``ts`` (set when it was published; the wire keeps milliseconds) to the moment the
writer committed it (recorded by a hook after the commit, no sleeps in the measured path). The baseline,
measured in the same run with the same load, is a subscriber that only receives and acknowledges, through the
same MQTT client central uses (no validation, no storage, no page): the ratios say what central costs on top
of the MQTT transport.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import resource
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not an installed copy

from kuzet.central.auth import tokens, users  # noqa: E402
from kuzet.central.broker import MosquittoServer  # noqa: E402
from kuzet.central.config import CentralConfig  # noqa: E402
from kuzet.central.context import Central  # noqa: E402
from kuzet.central.ingest.mqtt_client import BulkReceiveClient  # noqa: E402
from kuzet.central.service import start_parts  # noqa: E402
from kuzet.central.store import portable  # noqa: E402
from kuzet.shared import ids, messages, timeutil, topics  # noqa: E402
from kuzet.shared.config import MqttSection  # noqa: E402
from kuzet.shared.mqtt import Link, parse_url  # noqa: E402

SITE = "bench"
_PLACEHOLDER_ID = "0" * 26
_PLACEHOLDER_EVENT = "1" * 26
_PLACEHOLDER_TS = "2020-01-01T00:00:00.000Z"
_VIEWER = ("bench-viewer", "bench viewer password")
_EVENT_HEADER = b"\nevent: event\n"  # one per "event" update on the live stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5000, help="events per second, all devices together")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--patrol-share", type=float, default=0.01, help="share of events routing sends a patrol to"
    )
    parser.add_argument(
        "--store-url", default="", help="central's [store] url (empty: the embedded SQLite file in a tmp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--no-baseline", action="store_true", help="skip the receive-only baseline run")
    args = parser.parse_args(argv)
    # --json: only errors on stderr (every simulated camera is, rightly, reported as unregistered otherwise).
    logging.basicConfig(level=logging.ERROR if args.json else logging.INFO)

    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="kuzet-bench-") as tmp,
        MosquittoServer(workdir=Path(tmp) / "mq") as mq,
    ):
        result = run_central(mq.url, Path(tmp) / "central", args)
        if not args.no_baseline:
            baseline = run_receive_only(mq.url, args)
            result["baseline"] = baseline
            result["ratio_events_per_s"] = _ratio(result["events_per_s"], baseline["events_per_s"])
            result["ratio_p99"] = _ratio(result["p99_ms"], baseline["p99_ms"])
    # This machine is shared: the load average (before, after) says how much of it the run had.
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if not args.json:
        print(f"devices={args.devices} rate={args.rate}/s seconds={args.seconds}", file=sys.stderr)
    print(json.dumps(result))
    return 0 if result["lost"] == 0 else 1


def run_central(url: str, data_dir: Path, args) -> dict:
    # The simulated cameras are not registered.
    config = CentralConfig.model_validate(
        {"mqtt": {"url": url}, "ingest": {"accept_unregistered": True}, "store": {"url": args.store_url}}
    )
    central = Central(config=config, data_dir=data_dir)
    users.create_user(central.db(), *_VIEWER, "operator", actor="bench")
    token = tokens.create_token(central.db(), _VIEWER[0], "bench", actor="bench")
    latencies: list[float] = []
    depths: list[int] = []
    with contextlib.ExitStack() as running:
        parts = start_parts(central, running, web_host="127.0.0.1", web_port=0)
        ingest = parts.ingest
        if not ingest.subscribed.is_set():
            raise SystemExit("central's ingest could not subscribe")
        ingest.on(
            "event", lambda message, site: latencies.append(ingest.last_commit_at - message.ts.timestamp())
        )
        page = _Page(parts.web.url, token)
        if not _wait(lambda: central.hub.subscribers >= 1, 15):
            raise SystemExit("the page's live stream did not open")
        sampling = threading.Event()
        sampler = threading.Thread(
            target=_sample, args=(lambda: ingest.queue_depth, depths, sampling), daemon=True
        )
        sampler.start()
        cpu_before, threads_before = _cpu_s(), _thread_cpu_s()
        try:
            sent, first_sent, lag = _publish(url, args)
            stored = _wait_for_drain(lambda: len(latencies), sent)
            last_commit = ingest.last_commit_at or time.time()
            central_cpu_s = _cpu_s() - cpu_before
            threads_cpu_s = _thread_cpu_s(since=threads_before)
            if parts.routing is not None:
                parts.routing.drain(timeout_s=30)
        finally:
            sampling.set()
            page_events = page.close()
    in_store = _count(central, "events")
    diagnostics = {
        "max_queue_depth": max(depths, default=0),
        "publisher_lag_s": lag,
        "batches": ingest.counters.batches,
        "central_cpu_s": round(central_cpu_s, 2),
        "thread_cpu_s": threads_cpu_s,
        "page_events": page_events,
        "alerts": _count(central, "alerts"),
        "store": central.store.backend,
    }
    if stored != in_store:
        diagnostics["note"] = f"{stored} committed by hook count, {in_store} rows in the store"
    return _figures(sent, in_store, first_sent, last_commit, latencies) | diagnostics


def _count(central: Central, table: str) -> int:
    return portable.execute(central.db(), f"SELECT count(*) FROM {table}").fetchone()[0]


def run_receive_only(url: str, args) -> dict:
    """The same load into a subscriber that only records arrival times: the transport's own cost."""
    latencies: list[float] = []
    lock = threading.Lock()
    last = [0.0]
    probes: list[str] = []

    def receive(topic: str, payload: bytes) -> None:
        now = time.time()
        if not topic.endswith("/event"):
            probes.append(topic)
            return
        ts = json.loads(payload)["ts"]
        with lock:
            latencies.append(now - timeutil.from_wire(ts).timestamp())
            last[0] = now

    link = Link(MqttSection(url=url), "bench-baseline", client_class=BulkReceiveClient)
    link.subscribe(topics.all_up(), receive)
    link.start()
    _wait_until_subscribed(url, lambda: len(probes) > 0)
    try:
        sent, first_sent, lag = _publish(url, args)
        received = _wait_for_drain(lambda: len(latencies), sent)
    finally:
        link.stop()
    return _figures(sent, received, first_sent, last[0], latencies) | {"publisher_lag_s": lag}


# --- the page: a live stream read in a process of its own ------------------------------------------------


class _Page:
    """An operator's page holding the live stream open, in a child process (a browser is not in central's
    process either); it counts the events it is sent."""

    def __init__(self, base_url: str, token: str):
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results = context.Queue()
        self._process = context.Process(
            target=_read_stream, args=(base_url, token, self._stop, self._results), daemon=True
        )
        self._process.start()

    def close(self) -> int | None:
        self._stop.set()
        try:
            return self._results.get(timeout=30)
        except Exception:
            return None
        finally:
            self._process.join(timeout=10)


def _read_stream(base_url: str, token: str, stop, results) -> None:
    address = parse_url(base_url.replace("http://", "mqtt://"))
    sock = socket.create_connection((address.host, address.port), timeout=10)
    request = f"GET /api/v1/stream HTTP/1.1\r\nHost: {address.host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    sock.sendall(request.encode())
    sock.settimeout(0.5)
    events = 0
    tail = b""
    # Each update is written whole (one chunk of the chunked response), so counting its header is enough.
    while not stop.is_set():
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            continue
        if not data:
            break
        chunk = tail + data
        events += chunk.count(_EVENT_HEADER)
        tail = chunk[-(len(_EVENT_HEADER) - 1) :]  # a header cut in two by the read, never a whole one
    sock.close()
    results.put(events)


# --- measuring ---------------------------------------------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_THREAD_GROUPS = {"ingest-writer": "writer", "paho-mqtt": "mqtt", "waitress": "web", "routing": "routing"}


def _thread_cpu_s(since: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds of central's threads by part (Linux: /proc), less ``since``: where the process's time goes."""
    ticks = os.sysconf("SC_CLK_TCK")
    spent: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        part = next((p for prefix, p in _THREAD_GROUPS.items() if thread.name.startswith(prefix)), "other")
        spent[part] = spent.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    since = since or {}
    return {part: round(value - since.get(part, 0.0), 2) for part, value in sorted(spent.items())}


def _sample(read, into: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.1):
        into.append(read())


def _wait(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _figures(sent: int, stored: int, first_sent: float, last_commit: float, latencies: list[float]) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "sent": sent,
        "stored": stored,
        "lost": sent - stored,
        "events_per_s": round(stored / max(last_commit - first_sent, 1e-9), 1),
        "p50_ms": round(statistics.median(ms), 2) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2) if ms else None,
    }


def _ratio(value, baseline) -> float | None:
    return round(value / baseline, 3) if value and baseline else None


def _wait_until_subscribed(url: str, arrived) -> None:
    # Setup, not measured: a probe message proves the subscription is active before the load starts.
    probe = Link(MqttSection(url=url), "bench-probe").start()
    try:
        deadline = time.monotonic() + 15
        while not arrived() and time.monotonic() < deadline:
            status = messages.Status(
                device="bench-probe", kind="camera", software_version="bench", uptime_s=0
            )
            probe.publish(topics.up(SITE, "bench-probe", "status"), messages.encode(status))
            time.sleep(0.2)
    finally:
        probe.stop()
    if not arrived():
        raise SystemExit("the subscriber never received the probe")


def _wait_for_drain(count, expected: int, idle_s: float = 5.0) -> int:
    """Until everything arrived, or nothing more arrived for ``idle_s``."""
    last_value, last_change = count(), time.monotonic()
    while last_value < expected and time.monotonic() - last_change < idle_s:
        time.sleep(0.05)
        value = count()
        if value != last_value:
            last_value, last_change = value, time.monotonic()
    return last_value


# --- the devices -------------------------------------------------------------------------------------------


def _publish(url: str, args) -> tuple[int, float, float]:
    """Run the devices in a child process; returns (messages sent, wall time of the first publish, how many
    seconds behind schedule the devices were at worst)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(
        target=_devices, args=(url, args.devices, args.rate, args.seconds, args.patrol_share, results)
    )
    child.start()
    sent, first_sent, lag = results.get(timeout=args.seconds + 120)
    child.join(timeout=30)
    return sent, first_sent, lag


def _devices(url: str, count: int, rate: float, seconds: float, patrol_share: float, results) -> None:
    """The simulated devices: one MQTT connection each, all driven from this one thread with MQTT packets
    written by hand, so that the load generator takes as little as it can of a machine it shares with
    central (paho costs several times as much per message)."""
    address = parse_url(url)
    names = [f"bench-cam-{i}" for i in range(count)]
    devices = [_RawDevice(address.host, address.port, name) for name in names]
    event_topics = [topics.up(SITE, name, "event").encode() for name in names]
    # Encoded once per device and kind; each message only gets a fresh id, event id and publish time.
    routine = [_template(name, "zone_enter", "low") for name in names]
    patrol = [_template(name, "loitering", "high") for name in names]
    every = round(1 / patrol_share) if patrol_share > 0 else 0
    total = int(rate * seconds)
    sent = 0
    lag = 0.0
    start = time.perf_counter()
    first_sent = time.time()
    while sent < total:
        elapsed = time.perf_counter() - start
        lag = max(lag, elapsed - sent / rate)
        due = min(total, int(elapsed * rate) + 1)
        while sent < due:
            device = sent % count
            template = patrol[device] if every and sent % every == every - 1 else routine[device]
            payload = (
                template.replace(_PLACEHOLDER_ID, ids.new_id(), 1)
                .replace(_PLACEHOLDER_EVENT, ids.new_id(), 1)
                .replace(_PLACEHOLDER_TS, timeutil.now_wire(), 1)
            )
            devices[device].publish(event_topics[device], payload.encode())
            sent += 1
        _RawDevice.service(devices, 0.001)
    deadline = time.monotonic() + 60
    while sum(d.acked for d in devices) < sent and time.monotonic() < deadline:
        _RawDevice.service(devices, 0.05)
    for device in devices:
        device.close()
    results.put((sent, first_sent, round(lag, 3)))


class _RawDevice:
    """One device's MQTT 3.1.1 connection: CONNECT, QoS 1 PUBLISH and counting PUBACKs, nothing else."""

    def __init__(self, host: str, port: int, client_id: str):
        self.acked = 0
        self._out = bytearray()
        self._in = b""
        self._next_id = 1
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        name = client_id.encode()
        # protocol "MQTT" level 4, clean session, keep-alive off (the run is short and never idle)
        variable = b"\x00\x04MQTT\x04\x02\x00\x00" + len(name).to_bytes(2, "big") + name
        self.sock.sendall(b"\x10" + _length(len(variable)) + variable)
        connack = self.sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise SystemExit(f"{client_id}: the broker refused the connection ({connack!r})")
        self.sock.setblocking(False)

    def publish(self, topic: bytes, payload: bytes) -> None:
        packet_id = self._next_id
        self._next_id = packet_id % 65535 + 1
        body = len(topic).to_bytes(2, "big") + topic + packet_id.to_bytes(2, "big") + payload
        self._out += b"\x32" + _length(len(body)) + body  # PUBLISH, QoS 1

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        del self._out[:sent]

    def _read(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        if not data:
            raise SystemExit("the broker closed a device's connection")
        self._in += data
        whole = len(self._in) - len(self._in) % 4
        # The broker sends a device nothing but PUBACKs (4 bytes each: 0x40, 2, packet id).
        self.acked += whole // 4
        self._in = self._in[whole:]

    @staticmethod
    def service(devices: list[_RawDevice], timeout_s: float) -> None:
        """Write what is queued, read acknowledgements."""
        for device in devices:
            if device._out:
                device._flush()
        readable, _, _ = select.select([d.sock for d in devices], [], [], timeout_s)
        by_socket = {d.sock: d for d in devices} if readable else {}
        for sock in readable:
            by_socket[sock]._read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def _length(value: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _template(device: str, event_type: str, severity: str) -> str:
    return messages.encode(
        messages.Event(
            id=_PLACEHOLDER_ID,
            device=device,
            event_id=_PLACEHOLDER_EVENT,
            ts=timeutil.from_wire(_PLACEHOLDER_TS),
            seq=0,
            state="open",
            event_type=event_type,
            severity=severity,
            label="person",
            score=0.81,
            started_at=timeutil.utc_now(),
            zone="square",
            track_ids=[7],
            box=messages.Box(x=100, y=120, w=40, h=90),
            frame_size=(768, 576),
            location=messages.GeoPoint(lat=52.2873, lon=76.9674),
        )
    ).decode()


if __name__ == "__main__":
    sys.exit(main())
