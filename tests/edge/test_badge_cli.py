"""``kuzet badge`` as a technician meets it: a bad configuration is explained and nothing starts; the
shipped example configuration is valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kuzet.edge.badge.config import BadgeConfig
from kuzet.edge.badge.gps import load_route
from kuzet.shared.config import load

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "edge" / "badge" / "examples"


def kuzet_badge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kuzet.shared.cli", "badge", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_configuration_is_explained(tmp_path):
    config = tmp_path / "badge.toml"
    config.write_text('[device]\nid = "Badge 1"\n[gps]\nsource = "glonass"\nbaud = 9600\n')
    result = kuzet_badge("--config", str(config), "--no-tui")
    assert result.returncode == 2
    assert "device.id" in result.stderr and "gps.source" in result.stderr
    missing = kuzet_badge("--config", str(tmp_path / "nowhere.toml"), "--no-tui")
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_example_configuration_and_route_are_valid():
    config = load(EXAMPLES / "badge.toml", BadgeConfig)
    assert config.gps.route_file == EXAMPLES / "pavlodar-patrol.geojson"
    assert len(load_route(config.gps.route_file)) >= 5
