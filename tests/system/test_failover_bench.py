"""bench/failover.py end to end, short: it runs as the script does, in a process of its own, kills the primary
broker, and must report every event stored once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "failover.py"

pytestmark = [pytest.mark.slow, pytest.mark.broker]  # the bench starts its own Mosquittos


def test_the_failover_bench_reports_the_move_and_nothing_lost():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--json", "--seconds", "6", "--rate", "100", "--failover-after-s", "1"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.stdout, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["sent"] > 300 and figures["moves"] == 1
    assert figures["lost"] == 0 and figures["duplicates"] == 0, done.stderr[-3000:]
    assert figures["broker_failover_s"] >= 1  # the primary had its failover_after_s to come back
    assert figures["stored_again_s"] is not None and figures["caught_up_s"] is not None
    assert done.returncode == 0
