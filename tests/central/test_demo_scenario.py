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


def test_the_demo_has_the_accounts_the_readme_names_each_with_its_role(tmp_path):
    from pathlib import Path

    from kuzet.central.auth import users
    from kuzet.central.store.schema import open_database

    database = open_database(tmp_path / "kuzet.db")
    scenario.create_accounts(database)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for username in ("operator", "supervisor", "technician"):
        user = users.authenticate(database, username, scenario.DEMO_PASSWORD, source="test")
        assert user.role == username  # the operator is an operator, not a supervisor
        assert f"`{username}`" in readme
    assert f"`{scenario.DEMO_PASSWORD}`" in readme
    # An operator's page: events and dispatching, no audit log; a technician does not see evidence.
    assert users.get_user(database, "operator").can("dispatch")
    assert not users.get_user(database, "operator").can("audit.read")
    assert not users.get_user(database, "technician").can("events.media")
