"""Dispatch latency: event published at the edge -> dispatch received at the badge.

Runs its own Mosquitto, central's real IngestService and RoutingService, M simulated badges (paho clients
spread over a few processes, each answering its dispatches with acknowledged and resolved as an officer
would, so that units come free again) and one camera publishing events at a steady rate.

    python bench/dispatch.py --units 500 --rate 200 --seconds 20 --json

prints ``{"events": N, "dispatched": N, "p50_ms": X, "p99_ms": X, "lost": N}``; with ``--baseline`` it first
sends the same traffic straight to the badges (no central) and adds ``baseline_p50_ms``, ``baseline_p99_ms``
and ``p99_over_baseline``. ``lost`` counts events that never reached a badge within the drain time after the
last one was published.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import queue
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kuzet.central.broker import MosquittoServer  # noqa: E402
from kuzet.central.config import CentralConfig  # noqa: E402
from kuzet.central.context import Central  # noqa: E402
from kuzet.central.ingest.service import IngestService  # noqa: E402
from kuzet.central.routing.service import RoutingService  # noqa: E402
from kuzet.shared import ids, timeutil, topics  # noqa: E402
from kuzet.shared.config import MqttSection  # noqa: E402
from kuzet.shared.geo import offset  # noqa: E402
from kuzet.shared.messages import Dispatch, DispatchState, Event, Location, decode, encode  # noqa: E402
from kuzet.shared.mqtt import Link  # noqa: E402

SITE = "pavlodar"
CENTRE = (52.2873, 76.9674)
CITY_M = 5000.0  # units and events within +-5 km of the centre


def _badge_worker(url: str, badges: list[tuple[str, float, float]], results, ready, register, stop) -> None:
    """One process holding many badge clients; they report their positions once ``register`` is set."""
    logging.basicConfig(level=logging.WARNING)
    links = []

    def on_dispatch(device: str, link: Link):
        def handle(topic: str, payload: bytes) -> None:
            received = time.time()
            message = decode(topic, payload)
            if not isinstance(message, Dispatch):
                return
            results.put((message.event_id, received))
            for state, note in (("acknowledged", None), ("resolved", "bench: no action needed")):
                answer = DispatchState(device=device, dispatch_id=message.dispatch_id, state=state, note=note)
                link.publish(topics.up(SITE, device, "dispatch_state"), encode(answer))

        return handle

    for device, lat, lon in badges:
        link = Link(MqttSection(url=url, keepalive_s=60), f"bench-{device}")
        link.subscribe(topics.down(SITE, device, "dispatch"), on_dispatch(device, link))
        link.start(wait_s=None)
        links.append((device, lat, lon, link))
    for *_, link in links:
        link.connected.wait(30)
    ready.set()
    register.wait()
    for device, lat, lon, link in links:
        location = Location(device=device, position={"lat": lat, "lon": lon}, fix="route", duty="available")
        link.publish(topics.up(SITE, device, "location"), encode(location))
    stop.wait()
    for *_, link in links:
        link.stop()


def _place(rng: random.Random) -> tuple[float, float]:
    return offset(*CENTRE, rng.uniform(-CITY_M, CITY_M), rng.uniform(-CITY_M, CITY_M))


def _event(rng: random.Random) -> Event:
    lat, lon = _place(rng)
    return Event(
        device="cam-bench",
        event_id=ids.new_id(),
        seq=0,
        state="open",
        event_type="loitering",
        severity="high",
        label="person",
        score=0.9,
        started_at=timeutil.utc_now() - timedelta(seconds=1),
        location={"lat": lat, "lon": lon},
    )


def _camera_worker(url: str, rate: float, total: int, direct_to: list[str], go, published) -> None:
    """A street camera in a process of its own, as at the edge: paced events; their publish times go back.

    With ``direct_to`` (the baseline) it sends each event's dispatch straight to a badge instead, as if
    central took no time at all: what is left is the broker and the simulated badges."""
    rng = random.Random(11)
    camera = Link(MqttSection(url=url), "bench-camera").start()
    times = {}
    go.wait()
    started = time.monotonic()
    for index in range(total):
        due = started + index / rate
        while (now := time.monotonic()) < due:
            time.sleep(min(due - now, 0.002))
        event = _event(rng)
        if direct_to:
            badge = direct_to[index % len(direct_to)]
            topic = topics.down(SITE, badge, "dispatch")
            payload = encode(
                Dispatch(
                    device=badge,
                    dispatch_id=ids.new_id(),
                    mode="nearest",
                    event_id=event.event_id,
                    event_type=event.event_type,
                    severity=event.severity,
                    place=event.location,
                    distance_m=100.0,
                )
            )
        else:
            topic, payload = topics.up(SITE, "cam-bench", "event"), encode(event)
        times[event.event_id] = time.time()
        last = camera.publish(topic, payload)
    last.wait_for_publish(30)  # QoS 1 in order: once the last is acknowledged, all are
    camera.stop()
    published.put(times)


def _phase(
    ctx, url: str, rate: float, total: int, direct_to: list[str], results, drain_s: float
) -> list[float]:
    """Publish ``total`` paced events from a camera process; latencies (ms) of those that reached a badge."""
    go, published_queue = ctx.Event(), ctx.Queue()
    camera = ctx.Process(
        target=_camera_worker, args=(url, rate, total, direct_to, go, published_queue), daemon=True
    )
    camera.start()
    go.set()
    published: dict[str, float] = published_queue.get(timeout=total / rate + 120)
    camera.join(timeout=15)
    received: dict[str, float] = {}
    drain_until = time.monotonic() + drain_s
    while time.monotonic() < drain_until:
        try:
            event_id, at = results.get(timeout=0.2)
        except queue.Empty:
            if len(received) >= total:
                break
            continue
        received.setdefault(event_id, at)
    return sorted((received[e] - published[e]) * 1000 for e in received if e in published)


def _percentile(values: list[float], share: float) -> float | None:
    return round(values[min(len(values) - 1, int(len(values) * share))], 1) if values else None


def run(units: int, rate: float, seconds: float, processes: int, drain_s: float, baseline: bool) -> dict:
    rng = random.Random(7)
    workdir = Path(tempfile.mkdtemp(prefix="kuzet-bench-dispatch-"))
    broker = MosquittoServer(workdir=workdir / "mosquitto").start()
    ctx = multiprocessing.get_context("spawn")
    results, register, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    workers, readies = [], []
    ingest = routing = None
    try:
        badges = [(f"badge-{i:04d}", *_place(rng)) for i in range(units)]
        for index in range(processes):
            ready = ctx.Event()
            worker = ctx.Process(
                target=_badge_worker,
                args=(broker.url, badges[index::processes], results, ready, register, stop),
                daemon=True,
            )
            worker.start()
            workers.append(worker)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(120):
                raise RuntimeError("the simulated badges did not connect in time")
        total = int(rate * seconds)
        floor = []
        if baseline:
            floor = _phase(ctx, broker.url, rate, total, [b[0] for b in badges], results, drain_s)

        config = CentralConfig.model_validate(
            {
                "mqtt": {"url": broker.url},
                "ingest": {"accept_unregistered": True},  # the simulated devices are not registered
                "routing": {"ack_timeout_s": 600, "max_distance_m": 100_000, "min_severity": "low"},
            }
        )
        central = Central(config=config, data_dir=workdir / "central")
        ingest = IngestService(central)
        routing = RoutingService(central, ingest).start()
        ingest.start()
        register.set()
        deadline = time.monotonic() + 60
        while sum(u.free() for u in routing.units.all()) < units:
            if time.monotonic() > deadline:
                raise RuntimeError("central did not register every badge")
            time.sleep(0.05)
        latencies = _phase(ctx, broker.url, rate, total, [], results, drain_s)
    finally:
        if ingest is not None:
            ingest.stop()
            routing.stop()
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
            if worker.is_alive():
                worker.terminate()
        broker.stop()
    result = {
        "events": total,
        "dispatched": len(latencies),
        "p50_ms": _percentile(latencies, 0.5),
        "p99_ms": _percentile(latencies, 0.99),
        "lost": total - len(latencies),
    }
    if baseline:
        result["baseline_p50_ms"] = _percentile(floor, 0.5)
        result["baseline_p99_ms"] = _percentile(floor, 0.99)
        result["p99_over_baseline"] = (
            round(result["p99_ms"] / result["baseline_p99_ms"], 2) if floor else None
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=500, help="simulated badges (M)")
    parser.add_argument("--rate", type=float, default=200.0, help="camera events per second (R)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long events are published (S)")
    parser.add_argument("--processes", type=int, default=2, help="processes holding the badge clients")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for the last dispatches")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first measure the same traffic sent straight to the badges (no central), and add its p50/p99 "
        "and the ratio to the result",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = run(args.units, args.rate, args.seconds, args.processes, args.drain, args.baseline)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['events']} events, {result['dispatched']} dispatched, lost {result['lost']}; "
            f"event -> badge p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
        )
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
