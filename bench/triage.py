"""What the triage board costs central: folding the open events into incidents, and the whole
``GET /api/v1/incidents`` answer, in a store that already holds many closed events.

    flock /tmp/kuzet-bench.lock .venv/bin/python bench/triage.py --events 100000 --open 2000 --cameras 1000

Fills a fresh SQLite store (central's schema) with ``--events`` events over the last 30 days, ``--open`` of them
not closed, from ``--cameras`` cameras with a few zones and types each, then times ``--repeat`` foldings and as
many answers of the API (Flask's test client: no network) and prints one JSON object (milliseconds, p50 and p95).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.web import login, make_central  # noqa: E402

from kuzet.central.store import incidents  # noqa: E402
from kuzet.central.web import create_app  # noqa: E402
from kuzet.shared import ids, timeutil  # noqa: E402

TYPES = ("loitering", "crowd", "running", "zone_enter", "line_crossing")
SEVERITIES = (("critical", 5), ("high", 4), ("medium", 3), ("low", 2))


def fill(central, events: int, open_events: int, cameras: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = timeutil.utc_now()
    rows = []
    for n in range(events):
        is_open = n >= events - open_events
        # Open events are the last two hours' (they are what waits); closed ones are spread over 30 days.
        ago = timedelta(seconds=rng.uniform(0, 7200 if is_open else 30 * 86400))
        severity, rank = rng.choice(SEVERITIES)
        when = timeutil.to_wire(now - ago)
        rows.append(
            {
                "event_id": ids.new_id(),
                "device": f"cam-{rng.randrange(cameras):04d}",
                "site": "pavlodar",
                "event_type": rng.choice(TYPES),
                "severity": severity,
                "severity_rank": rank,
                "edge_state": "open",
                "seq": 0,
                "label": "person",
                "zone": rng.choice(("gate", "platform", "square")),
                "started_at": when,
                "received_at": when,
                "updated_at": when,
                "status": rng.choice(("new", "acknowledged")) if is_open else "closed",
            }
        )
    central.db()["events"].insert_all(rows, batch_size=5000)


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=2_000)
    parser.add_argument("--cameras", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        central = make_central(Path(folder))
        fill(central, args.events, args.open, args.cameras)
        window = central.config.triage.window_s
        fold = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            found = incidents.open_incidents(central.db(), window)
            fold.append((time.perf_counter() - start) * 1000)
        client = create_app(central).test_client()
        login(client, "operator")
        answer = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            response = client.get("/api/v1/incidents")
            answer.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        print(
            json.dumps(
                {
                    "events": args.events,
                    "open_events": args.open,
                    "cameras": args.cameras,
                    "incidents": len(found),
                    "fold": percentiles(fold),
                    "api_incidents": percentiles(answer),
                    "api_bytes": len(response.get_data()),
                }
            )
        )
        central.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
