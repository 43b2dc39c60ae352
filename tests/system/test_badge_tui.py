"""The badge as an officer uses it: ``kuzet badge`` in a terminal (tmux), driven by key presses, against
central's real ingest and routing. Also measures the agent's memory while it records evidence."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from support.patrol import Camera, Centre, point, wait_for

REPO = Path(__file__).resolve().parents[2]
MAX_RSS_MB = 120

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, name: str, command: str):
        self.name = name
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command], check=True
        )

    def screen(self) -> str:
        result = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return result.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def shows(self, text: str, timeout_s: float = 15.0) -> str:
        return wait_for(
            lambda: self.screen() if text in self.screen() else None, timeout_s, f"{text!r} on screen"
        )

    def pid(self) -> int:
        out = subprocess.run(
            ["tmux", "display-message", "-p", "-t", self.name, "#{pane_pid}"], capture_output=True, text=True
        )
        return int(out.stdout.strip())

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_officer_works_a_dispatch_and_raises_panic_from_the_keyboard(tmp_path, mosquitto, footage):
    centre = Centre(tmp_path, mosquitto.url)
    camera = Camera(mosquitto.url)
    lat, lon = point(120)
    route = tmp_path / "route.csv"
    route.write_text(f"{lat},{lon}\n{lat + 0.00001},{lon}\n")
    config = tmp_path / "badge.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "device": {"id": "badge-17", "site": "pavlodar", "name": "Sgt. Nurlanov"},
                "mqtt": {"url": mosquitto.url},
                "badge": {"initial_duty": "off_duty"},
                "gps": {"source": "route", "route_file": "route.csv", "route_speed_mps": 0.01},
                "camera": {"source": str(footage / "pets09-s2l1" / "vtest.avi")},
                "evidence": {"mode": "dispatch", "segment_s": 2, "fps": 5},
                "storage": {"dir": "badge-data"},
            }
        )
    )
    terminal = Terminal(
        f"kuzet-badge-{tmp_path.name[-12:]}",
        f"cd {REPO} && exec {sys.executable} -m kuzet.shared.cli badge --config {config}",
    )
    try:
        terminal.shows("DUTY: OFF DUTY")
        terminal.keys("s")  # off duty -> available
        terminal.shows("DUTY: AVAILABLE")
        wait_for(
            lambda: (u := centre.unit("badge-17")) and u.free(), what="central sees the officer available"
        )

        event_id = camera.event(point(0), description="Two men loitering at the ATM")
        screen = terminal.shows("DISPATCH [NEW]")
        assert "loitering" in screen and "Two men loitering at the ATM" in screen

        terminal.keys("a")
        terminal.shows("DISPATCH [ACKNOWLEDGED]")
        terminal.keys("e")
        terminal.shows("DUTY: EN ROUTE")
        terminal.keys("o")
        terminal.shows("DUTY: ON SCENE")
        wait_for(lambda: centre.dispatches(state="on_scene"), what="on scene at central")
        wait_for(lambda: "REC" in terminal.screen(), what="recording while on the dispatch")
        segments = tmp_path / "badge-data" / "evidence"
        wait_for(
            lambda: list(segments.glob("000001-*.json")), timeout_s=30, what="two evidence segments recorded"
        )
        rss = rss_mb(terminal.pid())
        print(f"badge agent RSS while recording evidence: {rss:.1f} MB")
        assert rss <= MAX_RSS_MB

        terminal.keys("r")
        terminal.shows("Protocol note:")
        terminal.keys("Checked IDs, moved on", "Enter")
        terminal.shows("No open dispatch.")
        [row] = wait_for(lambda: centre.dispatches(state="resolved"), what="resolved at central")
        assert row["note"] == "Checked IDs, moved on" and row["event_id"] == event_id

        terminal.keys("p")
        terminal.shows("PANIC? press y")
        terminal.keys("n")
        terminal.shows("panic cancelled")
        terminal.keys("p")
        terminal.shows("PANIC? press y")
        terminal.keys("y")
        terminal.shows("PANIC SENT")
        panic = wait_for(
            lambda: list(centre.db().query("select * from events where event_type = 'panic'")),
            what="panic event",
        )[0]
        assert panic["severity"] == "critical" and panic["device"] == "badge-17"
        assert panic["lat"] == pytest.approx(lat, abs=1e-4) and panic["lon"] == pytest.approx(lon, abs=1e-4)

        terminal.keys("a")  # nothing open: the officer is told, nothing is sent
        terminal.shows("no open dispatch")
        terminal.keys("q")
        wait_for(lambda: not terminal.alive(), what="the badge to quit")
        wait_for(lambda: not centre.unit("badge-17").online, what="central sees the badge go offline")
    finally:
        terminal.close()
        camera.stop()
        centre.stop()
