"""Ingest benchmark: N simulated devices publish events at R per second (all together) through a real
Mosquitto into one central IngestService; reports what was stored and the publish-to-commit latency.

    python bench/ingest.py --devices 50 --rate 5000 --seconds 20 --json

The devices run in a child process so that central's process is alone, as in production. Latency is the
event's ``ts`` (set when it was published; the wire keeps milliseconds) to the moment the writer committed it
(recorded inside the service, no sleeps in the measured path). The baseline, measured in the same run with the
same load, is a subscriber that only receives and acknowledges (no validation, no storage): the ratios say
what validation and storage cost on top of the MQTT transport.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not an installed copy

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from central.broker import MosquittoServer  # noqa: E402
from central.config import CentralConfig  # noqa: E402
from central.context import Central  # noqa: E402
from central.ingest.service import IngestService  # noqa: E402
from shared import ids, messages, timeutil, topics  # noqa: E402
from shared.config import MqttSection  # noqa: E402
from shared.mqtt import Link, parse_url  # noqa: E402

SITE = "bench"
_PLACEHOLDER_ID = "0" * 26
_PLACEHOLDER_EVENT = "1" * 26
_PLACEHOLDER_TS = "2020-01-01T00:00:00.000Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5000, help="events per second, all devices together")
    parser.add_argument("--seconds", type=float, default=20)
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
        result = run_ingest(mq.url, Path(tmp) / "central", args)
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


def run_ingest(url: str, data_dir: Path, args) -> dict:
    central = Central(config=CentralConfig.model_validate({"mqtt": {"url": url}}), data_dir=data_dir)
    service = IngestService(central)
    latencies: list[float] = []
    service.on(
        "event", lambda message, site: latencies.append(service.last_commit_at - message.ts.timestamp())
    )
    if not service.start().subscribed.is_set():
        raise SystemExit("central's ingest could not subscribe")
    depths: list[int] = []
    sampling = threading.Event()
    sampler = threading.Thread(
        target=_sample, args=(lambda: service.queue_depth, depths, sampling), daemon=True
    )
    sampler.start()
    try:
        sent, first_sent, lag = _publish(url, args)
        stored = _wait_for_drain(lambda: len(latencies), sent)
        last_commit = service.last_commit_at or time.time()
    finally:
        sampling.set()
        service.stop()
    in_store = central.db()["events"].count
    diagnostics = {
        "max_queue_depth": max(depths, default=0),
        "publisher_lag_s": lag,
        "batches": service.counters.batches,
    }
    if stored != in_store:
        diagnostics["note"] = f"{stored} committed by hook count, {in_store} rows in the store"
    return _figures(sent, in_store, first_sent, last_commit, latencies) | diagnostics


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

    link = Link(MqttSection(url=url), "bench-baseline")
    link.subscribe(topics.all_up(), receive)
    link.start()
    _wait_until_subscribed(url, lambda: len(probes) > 0)
    try:
        sent, first_sent, lag = _publish(url, args)
        received = _wait_for_drain(lambda: len(latencies), sent)
    finally:
        link.stop()
    return _figures(sent, received, first_sent, last[0], latencies) | {"publisher_lag_s": lag}


def _sample(read, into: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.1):
        into.append(read())


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


def _publish(url: str, args) -> tuple[int, float, float]:
    """Run the devices in a child process; returns (messages sent, wall time of the first publish, how many
    seconds behind schedule the devices were at worst)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_devices, args=(url, args.devices, args.rate, args.seconds, results))
    child.start()
    sent, first_sent, lag = results.get(timeout=args.seconds + 120)
    child.join(timeout=30)
    return sent, first_sent, lag


def _devices(url: str, count: int, rate: float, seconds: float, results) -> None:
    """The simulated devices: one MQTT connection each, all driven from this one thread (no paho network
    threads), so that the load generator costs as little CPU as it can on a machine shared with central."""
    names = [f"bench-cam-{i}" for i in range(count)]
    clients = [_DeviceClient(url, name) for name in names]
    event_topics = [topics.up(SITE, name, "event") for name in names]
    # Encoded once per device; each message only gets a fresh id, event id and publish time.
    templates = [_template(name) for name in names]
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
            payload = (
                templates[device]
                .replace(_PLACEHOLDER_ID, ids.new_id(), 1)
                .replace(_PLACEHOLDER_EVENT, ids.new_id(), 1)
                .replace(_PLACEHOLDER_TS, timeutil.now_wire(), 1)
            )
            clients[device].publish(event_topics[device], payload.encode())
            sent += 1
        _DeviceClient.service(clients, 0.001)
    deadline = time.monotonic() + 60
    while sum(c.acked for c in clients) < sent and time.monotonic() < deadline:
        _DeviceClient.service(clients, 0.05)
    for client in clients:
        client.close()
    results.put((sent, first_sent, round(lag, 3)))


class _DeviceClient:
    def __init__(self, url: str, client_id: str):
        address = parse_url(url)
        self.acked = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(address.host, address.port, keepalive=60)
        self.socket = self.client.socket()
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + 10
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise SystemExit(f"{client_id}: no CONNACK from {url}")
            self.service([self], 0.05)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acked += 1

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise SystemExit(f"publish failed: {paho.error_string(info.rc)}")

    @staticmethod
    def service(clients: list[_DeviceClient], timeout_s: float) -> None:
        """Read acknowledgements, flush partial writes, keep the connections alive."""
        by_socket = {c.socket: c for c in clients}
        writers = [c.socket for c in clients if c.client.want_write()]
        readable, writable, _ = select.select(list(by_socket), writers, [], timeout_s)
        for sock in readable:
            by_socket[sock].client.loop_read(max_packets=1000)
        for sock in writable:
            by_socket[sock].client.loop_write()
        for client in clients:
            client.client.loop_misc()

    def close(self) -> None:
        self.client.disconnect()


def _template(device: str) -> str:
    return messages.encode(
        messages.Event(
            id=_PLACEHOLDER_ID,
            device=device,
            event_id=_PLACEHOLDER_EVENT,
            ts=timeutil.from_wire(_PLACEHOLDER_TS),
            seq=0,
            state="open",
            event_type="loitering",
            severity="medium",
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
