"""Store benchmark: the events repository and nearest-unit queries on SQLite and PostgreSQL in the same run,
and clip uploads to the media folder and to S3 (SeaweedFS), all on this machine.

    flock /tmp/kuzet-bench.lock .venv/bin/python bench/store.py --events 20000 --json

Events: ``--events`` events of three messages each (open, update, closed), shuffled so that an event's
messages fall in different batches as they do at a broker, written in batches of ``--batch`` (ingest's
``batch_max``) through ``store.events.apply``, one transaction a batch, as ingest's writer does. PostgreSQL is
also run with ``--workers`` processes sharing the messages (a shared subscription's split), each with its own
connection. Reported: messages/s and the per-batch commit time (p50, p99).

Nearest units: ``--units`` available units scattered over 40 km, ``--queries`` nearest-5 queries at random
points: SQLite (all rows read, distances in numpy), PostgreSQL plain SQL distance, PostgreSQL with PostGIS
KNN. Clips: ``--clips`` clips of ``--clip-mb`` MiB put into the media folder and into SeaweedFS (multipart,
8 MiB parts), then read back as the page's proxy streams them, with the most Python memory held at once. The PostgreSQL cluster and SeaweedFS are throw-away ones on free ports (tests/support).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # support.postgres, support.seaweedfs: the throw-away servers

from support.ingest import event, new_id  # noqa: E402
from support.postgres import PostgresCluster, find_bin_dir  # noqa: E402
from support.seaweedfs import SeaweedS3, find_weed  # noqa: E402

from kuzet.central.config import StoreSection  # noqa: E402
from kuzet.central.routing.repository_pg import NEAREST_SQL, PostgresRoutingRepository  # noqa: E402
from kuzet.central.routing.units import Unit  # noqa: E402
from kuzet.central.store.backend import open_store  # noqa: E402
from kuzet.central.store.events import Received  # noqa: E402
from kuzet.central.store.objects import MIB, LocalObjects, S3Objects  # noqa: E402
from kuzet.shared import timeutil  # noqa: E402

CENTRE = (52.2873, 76.9674)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--clip-mb", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    batches = _batches(args.events, args.batch)
    result: dict = {"messages": sum(len(b) for b in batches), "batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="kuzet-bench-store-") as tmp:
        cluster = PostgresCluster(find_bin_dir()).start()
        try:
            sqlite = open_store(StoreSection(), Path(tmp))
            result["sqlite"] = _write(sqlite, batches)
            result["sqlite"]["nearest"] = _nearest(sqlite, args)
            sqlite.close()
            postgres = open_store(StoreSection(url=cluster.create_database("one")), Path(tmp))
            result["postgresql"] = _write(postgres, batches)
            result["postgresql"]["nearest"] = _nearest(postgres, args)
            result["postgresql"]["nearest_plain_sql"] = _nearest(
                postgres, args, method=NEAREST_SQL, fill=False
            )
            postgres.close()
            result[f"postgresql_{args.workers}_workers"] = _write_parallel(
                cluster.create_database("many"), batches, args.workers
            )
        finally:
            cluster.stop()
        result["clips"] = _clips(Path(tmp), args)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _batches(count: int, size: int) -> list[list[Received]]:
    messages = []
    now = timeutil.now_wire()
    for _ in range(count):
        event_id = new_id()
        for seq, state in enumerate(("open", "update", "closed")):
            messages.append(
                Received(event(f"cam-{random.randrange(500)}", event_id, seq, state), "bench", now)
            )
    random.Random(7).shuffle(messages)
    return [messages[i : i + size] for i in range(0, len(messages), size)]


def _write(store, batches) -> dict:
    times = []
    started = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        with store.transaction() as conn:
            store.events.apply(conn, batch)
        times.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    with store.transaction() as conn:
        rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return {
        "backend": store.backend,
        "messages_per_s": round(sum(len(b) for b in batches) / elapsed),
        "batch_ms_p50": round(statistics.median(times), 1),
        "batch_ms_p99": round(_p99(times), 1),
        "events_stored": rows,
    }


def _worker(url: str, batches, out) -> None:
    store = open_store(StoreSection(url=url), Path(tempfile.gettempdir()))
    try:
        out.put(_write(store, batches))
    finally:
        store.close()


def _write_parallel(url: str, batches, workers: int) -> dict:
    open_store(StoreSection(url=url), Path(tempfile.gettempdir())).close()  # migrate once, up front
    out = multiprocessing.get_context("fork").Queue()
    shares = [batches[i::workers] for i in range(workers)]
    processes = [
        multiprocessing.get_context("fork").Process(target=_worker, args=(url, s, out)) for s in shares
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    reports = [out.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    return {
        "messages_per_s": round(sum(len(b) for b in batches) / elapsed),
        "per_worker_messages_per_s": [r["messages_per_s"] for r in reports],
        "batch_ms_p99": max(r["batch_ms_p99"] for r in reports),
        "events_stored": max(r["events_stored"] for r in reports),
    }


def _nearest(store, args, method: str | None = None, fill: bool = True) -> dict:
    rng = random.Random(11)
    with store.transaction() as conn:
        repo = store.routing_repository(conn)
        if method is not None:
            repo = PostgresRoutingRepository(lambda: conn, nearest_method=method)
        if fill:
            for i in range(args.units):
                lat, lon = CENTRE[0] + rng.uniform(-0.18, 0.18), CENTRE[1] + rng.uniform(-0.3, 0.3)
                repo.save_unit(
                    Unit(f"badge-{i}", site="bench", lat=lat, lon=lon, duty="available", online=True)
                )
            if store.backend == "postgresql":
                conn.execute("ANALYZE units")  # what autovacuum does once a table has filled
    times = []
    with store.transaction() as conn:
        repo = store.routing_repository(conn)
        if method is not None:
            repo = PostgresRoutingRepository(lambda: conn, nearest_method=method)
        for _ in range(args.queries):
            point = CENTRE[0] + rng.uniform(-0.1, 0.1), CENTRE[1] + rng.uniform(-0.1, 0.1)
            t0 = time.perf_counter()
            repo.nearest_units(*point, limit=5)
            times.append((time.perf_counter() - t0) * 1000)
    return {
        "method": method or store.nearest_method,
        "units": args.units,
        "query_ms_p50": round(statistics.median(times), 2),
        "query_ms_p99": round(_p99(times), 2),
    }


def _clips(tmp: Path, args) -> dict:
    server = SeaweedS3(find_weed()).start()
    try:
        s3 = S3Objects(server.client(), "bench", part_bytes=8 * MIB)
        s3.ensure_bucket()
        report = {}
        for name, store in (("local_folder", LocalObjects(tmp / "media")), ("s3_seaweedfs", s3)):
            elapsed, peaks = 0.0, []
            for _ in range(args.clips):
                data = os.urandom(args.clip_mb * MIB)
                sha = hashlib.sha256(data).hexdigest()
                path = tmp / "clip.mp4"
                path.write_bytes(data)
                del data
                tracemalloc.start()
                t0 = time.perf_counter()
                store.put_file(sha, path, "video/mp4")
                elapsed += time.perf_counter() - t0
                for _chunk in store.read(sha).chunks:  # as the page's proxy streams it
                    pass
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            report[name] = {
                "clips": args.clips,
                "clip_mb": args.clip_mb,
                "mb_per_s": round(args.clips * args.clip_mb / elapsed, 1),
                # Most Python memory held at once while uploading and streaming a clip back.
                "peak_python_mb": round(max(peaks) / MIB, 1),
            }
        return report
    finally:
        server.stop()


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


if __name__ == "__main__":
    sys.exit(main())
