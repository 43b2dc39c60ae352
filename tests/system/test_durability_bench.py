"""bench/durability.py end to end, tiny: one scenario (the broker SIGKILLed and replaced by a fresh one) for 3 s
of sending. It runs as the script does, in a process of its own, and must leave no process or mount behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "durability.py"

pytestmark = [pytest.mark.slow, pytest.mark.broker]  # the bench starts its own Mosquitto


def test_the_durability_bench_runs_a_scenario_and_reports_it():
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--json",
            "--seconds",
            "3",
            "--settle-s",
            "30",
            "--scenarios",
            "broker_replace",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.stdout, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])["scenarios"]["broker_replace"]
    assert set(figures) == {"acked", "stored", "lost", "recovered_s"}
    assert figures["acked"] > 500
    assert figures["lost"] == 0 and figures["stored"] == figures["acked"], done.stderr[-3000:]
    assert done.returncode == 0
    assert "kuzet-durability" not in Path("/proc/mounts").read_text()
