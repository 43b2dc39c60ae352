"""What the response times cost central: the figures per shift (the last 14) and per unit, and the whole
statistics page and its CSV, in a store whose last week holds many answered events.

    flock /tmp/kuzet-bench.lock .venv/bin/python bench/response_times.py --events 100000 --units 60

Fills a fresh SQLite store (central's schema) with ``--events`` events over the last 7 days, each acknowledged
and closed (audit entries, written directly: the chain is not what is measured), a third of them with a
dispatch to one of ``--units`` units (sent, acknowledged, on scene, resolved in the dispatch log); then times
``--repeat`` computations and page answers (Flask's test client: no network) and prints one JSON object
(milliseconds, p50 and p95). The page keeps the ended shifts' figures between loads
(``central.store.response_cache``): its first load, which computes them all, is reported apart.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.web import login, make_central  # noqa: E402

from kuzet.central.store import response_times, shifts  # noqa: E402
from kuzet.central.web import create_app  # noqa: E402
from kuzet.shared import ids, timeutil  # noqa: E402

STARTS = ["08:00", "20:00"]


def fill(central, events: int, units: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = timeutil.utc_now()
    event_rows, audit_rows, dispatch_rows, log_rows = [], [], [], []
    for _ in range(events):
        received = now - timedelta(seconds=rng.uniform(0, 7 * 86400))
        at = lambda seconds, base=received: timeutil.to_wire(base + timedelta(seconds=seconds))  # noqa: E731
        event_id = ids.new_id()
        event_rows.append(
            {
                "event_id": event_id,
                "device": f"cam-{rng.randrange(1000):04d}",
                "event_type": "loitering",
                "severity": "high",
                "started_at": at(-5),
                "received_at": at(0),
                "status": "closed",
            }
        )
        ack, close = rng.uniform(5, 300), rng.uniform(600, 5400)
        for action, seconds in (("event.acknowledge", ack), ("event.close", close)):
            audit_rows.append(
                {
                    "ts": at(seconds),
                    "actor": "operator",
                    "action": action,
                    "target": f"event:{event_id}",
                    "detail": "{}",
                    "prev_hash": "-",
                    "hash": "-",
                }
            )
        if rng.random() < 1 / 3:
            dispatch_id = ids.new_id()
            dispatch_rows.append(
                {
                    "dispatch_id": dispatch_id,
                    "event_id": event_id,
                    "unit": f"badge-{rng.randrange(units):03d}",
                    "state": "resolved",
                    "created_at": at(ack),
                }
            )
            moment = ack
            for state in ("sent", "acknowledged", "en_route", "on_scene", "resolved"):
                moment += rng.uniform(5, 400)
                log_rows.append({"dispatch_id": dispatch_id, "state": state, "at": at(moment)})
    db = central.db()
    with db.conn:
        db["events"].insert_all(event_rows, batch_size=5000)
        db["audit"].insert_all(audit_rows, batch_size=5000)
        db["dispatches"].insert_all(dispatch_rows, batch_size=5000)
        db["dispatch_log"].insert_all(log_rows, batch_size=5000)


def timed(function, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        central = make_central(Path(folder))
        fill(central, args.events, args.units)
        zone = ZoneInfo(central.config.site.timezone)
        recent = shifts.recent(timeutil.utc_now(), STARTS, zone, 14)
        db = central.db()
        client = create_app(central).test_client()
        login(client, "supervisor")
        first = time.perf_counter()
        client.get("/stats")  # computes every shift; the loads after it, the running shift alone
        first_ms = round((time.perf_counter() - first) * 1000, 1)
        result = {
            "events": args.events,
            "units": args.units,
            "per_shift_14": timed(lambda: response_times.per_shift(db, recent), args.repeat),
            "per_unit_7_days": timed(
                lambda: response_times.per_unit(db, recent[-1].start_wire, recent[0].end_wire), args.repeat
            ),
            "stats_page_first_load_ms": first_ms,
            "stats_page": timed(lambda: client.get("/stats"), args.repeat),
            "csv_by_shift": timed(lambda: client.get("/stats/response-times.csv?by=shift"), args.repeat),
        }
        central.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
