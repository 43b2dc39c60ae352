"""Central split over processes (``kuzet central run --role``): what one ingest worker stores per second and
what a second adds, how fast the routing leader applies what ingest kept for it, how long the routing
standby takes to lead after the leader's SIGKILL, and how long a web worker's request to the routing leader
takes through the store.

    python bench/roles.py --workers 1,2 --rate 4000 --seconds 15 --json

Each ingest worker is a process of its own as systemd runs it, all in one ``$share/`` group of a real
Mosquitto, storing into a throw-away PostgreSQL (tests/support/postgres.py); the devices are bench/ingest.py's
(one child process, MQTT packets written by hand). Stored/s is events in the store over the time from the
first publish to the last commit."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout, not an installed copy
sys.path.insert(0, str(ROOT / "tests"))  # support.postgres, support.roles: the throw-away servers, workers
sys.path.insert(0, str(ROOT / "bench"))

import ingest as ingest_bench  # noqa: E402
from support.postgres import PostgresCluster, find_bin_dir  # noqa: E402
from support.roles import WorkerProcess  # noqa: E402

from kuzet.central.broker import MosquittoServer  # noqa: E402
from kuzet.central.config import CentralConfig  # noqa: E402
from kuzet.central.context import Central  # noqa: E402
from kuzet.central.remote_routing import RemoteRouting  # noqa: E402
from kuzet.central.store import portable  # noqa: E402
from kuzet.shared import messages, timeutil, topics  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="ingest worker counts to run, comma-separated")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rate", type=float, default=4000, help="events per second, all devices together")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--requests", type=int, default=200, help="web worker requests to the leader")
    parser.add_argument("--inbox", type=int, default=20000, help="messages put in the leader's inbox at once")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    args.patrol_share = 0.0
    result: dict = {"rate": args.rate, "seconds": args.seconds}
    cluster = PostgresCluster(find_bin_dir()).start()
    try:
        with tempfile.TemporaryDirectory(prefix="kuzet-bench-roles-") as tmp:
            for count in [int(n) for n in args.workers.split(",") if n]:
                url = cluster.create_database(f"ingest_{count}")
                result[f"ingest_{count}_workers"] = _ingest(Path(tmp) / f"ingest{count}", url, count, args)
                _say(args, result)
            url = cluster.create_database("routing")
            result["routing"] = _routing(Path(tmp) / "routing", url, args)
    finally:
        cluster.stop()
    print(json.dumps(result))
    return 0


def _config(url: str, broker: str) -> CentralConfig:
    return CentralConfig.model_validate(
        {
            "central": {"site": ingest_bench.SITE},
            "mqtt": {"brokers": [broker], "protocol": "5"},
            "ingest": {"share_group": "ingest", "accept_unregistered": True},
            "store": {"url": url},
            "worker": {"leader_poll_s": 1.0},
        }
    )


def _ingest(folder: Path, url: str, count: int, args) -> dict:
    with MosquittoServer(workdir=folder / "mosquitto") as broker:
        config = _config(url, broker.url)
        central = Central(config=config, data_dir=folder / "central")  # the schema, and the count
        workers = [WorkerProcess(config, central.data_dir, "ingest", str(i), url) for i in range(count)]
        try:
            _until(lambda: all((w.health() or {}).get("status") == "ok" for w in workers), 60)
            sent, first_sent, _lag = ingest_bench._publish(broker.url, args)
            stored, last_change = _drain(lambda: _count(central), sent)
            per_worker = [_metric(w.metrics(), "kuzet_ingest_stored_total") for w in workers]
            delays = [
                _metric(w.metrics(), "kuzet_ingest_delay_seconds_sum")
                / max(_metric(w.metrics(), "kuzet_ingest_delay_seconds_count"), 1)
                for w in workers
            ]
        finally:
            for worker in workers:
                worker.stop()
            central.close()
    seconds = max(last_change - first_sent, 1e-6)
    return {
        "sent": sent,
        "stored": stored,
        "lost": sent - stored,
        "stored_per_s": round(stored / seconds),
        "per_worker": [int(n) for n in per_worker],
        "mean_batch_delay_ms": [round(d * 1000, 1) for d in delays],
    }


def _routing(folder: Path, url: str, args) -> dict:
    """Leader failover after SIGKILL, and a web worker's requests to the leader (``waiting()``: the
    round trip through the store, routing's own work nearly nothing)."""
    with MosquittoServer(workdir=folder / "mosquitto") as broker:
        config = _config(url, broker.url)
        central = Central(config=config, data_dir=folder / "central")
        leader = WorkerProcess(config, central.data_dir, "routing", "a", url)
        standby = None
        try:
            _until(leader.leading, 60)
            standby = WorkerProcess(config, central.data_dir, "routing", "b", url)
            _until(standby.health, 60)
            remote = RemoteRouting(central)
            took = []
            for _ in range(args.requests):
                began = time.perf_counter()
                remote.waiting()
                took.append(time.perf_counter() - began)
            inbox = _inbox(central, args.inbox)
            leader.kill()
            killed = time.monotonic()
            _until(standby.leading, 60, every_s=0.01)
            failover_s = time.monotonic() - killed
        finally:
            for worker in (leader, standby):
                if worker is not None:
                    worker.stop()
            central.close()
    took.sort()
    return inbox | {
        "leader_failover_s": round(failover_s, 2),
        "leader_poll_s": config.worker.leader_poll_s,
        "request_p50_ms": round(statistics.median(took) * 1000, 1),
        "request_p99_ms": round(took[int(len(took) * 0.99) - 1] * 1000, 1),
    }


def _inbox(central: Central, count: int) -> dict:
    """``count`` badge statuses and positions (100 badges), as ingest workers keep them, put into the inbox
    at once: how fast the leader applies them."""
    now = timeutil.utc_now()
    rows = []
    for index in range(count):
        device = f"bench-badge-{index % 100}"
        if index % 4:
            message = messages.Location(
                device=device,
                ts=now,
                position={"lat": 52.28 + index % 100 / 1000, "lon": 76.96},
                fix="gps",
                duty="available",
            )
        else:
            message = messages.Status(device=device, ts=now, kind="badge", software_version="1", uptime_s=1)
        topic = topics.up(ingest_bench.SITE, device, message.type)
        rows.append((ingest_bench.SITE, topic, messages.encode(message), timeutil.to_wire(now)))
    db = central.db()
    with portable.transaction(db):
        portable.executemany(
            db, "INSERT INTO routing_inbox (site, topic, payload, received_at) VALUES (?, ?, ?, ?)", rows
        )
    began = time.monotonic()
    _until(lambda: portable.row(db, "SELECT count(*) AS n FROM routing_inbox")["n"] == 0, 300, every_s=0.05)
    seconds = time.monotonic() - began
    return {"inbox_messages": count, "inbox_applied_per_s": round(count / seconds)}


def _count(central: Central) -> int:
    return portable.row(central.db(), "SELECT count(*) AS n FROM events")["n"]


def _drain(count, expected: int, idle_s: float = 10.0) -> tuple[int, float]:
    """(the count once everything arrived or nothing more did for ``idle_s``, when it last changed)."""
    value, changed = count(), time.time()
    while value < expected and time.time() - changed < idle_s:
        time.sleep(0.1)
        now = count()
        if now != value:
            value, changed = now, time.time()
    return value, changed


def _metric(text: str, name: str) -> float:
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(f"{name} ")))


def _until(condition, timeout_s: float, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s} s")
        time.sleep(every_s)


def _say(args, result: dict) -> None:
    if not args.json:
        print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
