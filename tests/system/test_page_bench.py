"""bench/page.py end to end, small: a few cameras for half a minute into a store of a few thousand events, with
one real Chromium page and a few light ones. It runs as the script does, in a process of its own; what is
checked is the report's shape and that nothing was lost or refused, not how fast it was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "page.py"

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.browser]  # its own Mosquitto and Chromium


def test_the_page_bench_serves_every_page_and_loses_nothing():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    pages = 4
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--json",
            "--cameras",
            "20",
            "--minutes",
            "0.5",
            "--events",
            "3000",
            "--pages",
            str(pages),
            "--browsers",
            "1",
            "--dwell",
            "5",
            "--rate-per-hour",
            "600",  # ten times the real rate, so that twenty cameras raise a few dozen events
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {
        "cameras",
        "events_in_store",
        "minutes",
        "pages",
        "published",
        "stored",
        "first_paint_ms",
        "live_update_ms",
        "api_incidents_ms",
        "stream_clients_ok",
        "errors",
    } <= set(report)
    assert (report["cameras"], report["events_in_store"], report["minutes"], report["pages"]) == (
        20,
        3000,
        0.5,
        4,
    )
    assert report["published"] > 20
    assert report["stored"] == report["published"], done.stderr[-3000:]
    assert report["errors"] == 0, done.stderr[-3000:]
    assert report["stream_clients_ok"] == pages
    # The browser measured something of each kind, and the light pages read the board's API.
    for figure in ("first_paint_ms", "live_update_ms", "api_incidents_ms"):
        assert set(report[figure]) == {"p50", "p95"}
        assert 0 < report[figure]["p50"] <= report[figure]["p95"], figure
    assert report["stream_events_per_page"]["min"] >= report["published"]  # every page was sent every event
    assert done.returncode == 0
