"""What the unit board and the site's own map tiles cost on central.

    flock /tmp/kuzet-bench.lock .venv/bin/python bench/units_map.py --units 2000 --requests 500

Prints one JSON object:
- ``board_ms``: building the unit board's rows (``central.routing.board.rows``: status, time in status,
  distance to the selected incident, who may be diverted) for ``--units`` units, a third of them on a dispatch;
  median and p95 of 50 runs.
- ``tiles``: per tile-set kind (XYZ folder, MBTiles, PMTiles), one tile request through the Flask app (log-in
  session, ``/map/tiles/{z}/{x}/{y}``, 200 with its bytes), median and p95 in ms and requests per second on one
  thread, over ``--requests`` requests spread across a 9 x 9 x 3-zoom tile set of real PNGs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import tiles as tileset  # noqa: E402
from support.patrol import point  # noqa: E402
from support.web import login, make_central  # noqa: E402

from kuzet.central.routing import board  # noqa: E402
from kuzet.central.routing.planner import Incident  # noqa: E402
from kuzet.central.routing.units import Unit  # noqa: E402
from kuzet.central.web import create_app  # noqa: E402


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 3),
    }


def bench_board(count: int) -> dict:
    rng = random.Random(7)
    units, held, events = [], {}, {}
    for n in range(count):
        lat, lon = point(rng.uniform(-5000, 5000), rng.uniform(-5000, 5000))
        device = f"badge-{n:05d}"
        on_dispatch = n % 3 == 0
        units.append(
            Unit(
                device,
                "pavlodar",
                device.upper(),
                lat,
                lon,
                "available",
                True,
                "2026-12-05T06:00:00.000Z",
                f"d-{n}" if on_dispatch else None,
                [],
                "2026-12-05T06:00:00.000Z",
            )
        )
        if on_dispatch:
            held[device] = {
                "dispatch_id": f"d-{n}",
                "unit": device,
                "state": "en_route",
                "mode": "nearest",
                "event_id": f"ev-{n}",
                "updated_at": "2026-12-05T06:10:00.000Z",
            }
            events[f"ev-{n}"] = {"event_type": "crowd", "severity": "medium", "label": "people"}
    selected = Incident("ev-x", "pavlodar", "panic", "critical", *point(0))
    samples = []
    for _ in range(50):
        start = time.perf_counter()
        board.rows(units, set(), held, events, selected, 1.3)
        samples.append((time.perf_counter() - start) * 1000)
    return {"units": count, "on_dispatch": len(held), **percentiles(samples)}


def bench_tiles(requests: int) -> dict:
    results = {}
    tiles = tileset.tiles_around(52.2873, 76.9674, radius=4)
    keys = list(tiles)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sources = {
            "xyz": tileset.write_xyz(root / "xyz", tiles),
            "mbtiles": tileset.write_mbtiles(root / "city.mbtiles", tiles),
            "pmtiles": tileset.write_pmtiles(root / "city.pmtiles", tiles),
        }
        for kind, path in sources.items():
            central = make_central(root / kind, map={"tiles": str(path)})
            client = create_app(central).test_client()
            login(client, "operator")
            rng, samples = random.Random(3), []
            for _ in range(requests):
                z, x, y = rng.choice(keys)
                start = time.perf_counter()
                response = client.get(f"/map/tiles/{z}/{x}/{y}")
                samples.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200 and response.data == tiles[(z, x, y)]
            central.close()
            results[kind] = {**percentiles(samples), "per_s": round(1000 / statistics.mean(samples))}
    return {"tile_set": len(tiles), "requests": requests, **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps({"board_ms": bench_board(args.units), "tiles_ms": bench_tiles(args.requests)}, indent=2))


if __name__ == "__main__":
    main()
