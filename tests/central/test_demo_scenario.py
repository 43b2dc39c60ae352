"""The demo writes device configuration as plain data (central never imports edge): the files it writes are
still what the agents accept."""

from __future__ import annotations

from kuzet.central.demo import scenario
from kuzet.edge.badge.config import BadgeConfig
from kuzet.edge.camera.config import CameraConfig
from kuzet.shared import config


def test_the_demo_device_files_load_with_the_agents_configuration_classes(tmp_path):
    footage = tmp_path / "footage.mp4"
    footage.write_bytes(b"")
    written = scenario.write(tmp_path, "mqtt://127.0.0.1:1883", "5", 8080, None, footage, None)
    assert [config.load(p, CameraConfig).device.id for p in written.cameras] == ["cam-0001", "cam-0002"]
    assert [config.load(p, BadgeConfig).device.id for p in written.badges] == ["badge-0001", "badge-0002"]
