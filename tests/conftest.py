"""Plain fixtures every test file can use: a real Mosquitto on a free port, and the material in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kuzet.central.broker import MosquittoServer

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KUZET_SHARED", REPO.parent / "shared"))


@pytest.fixture
def mosquitto(tmp_path):
    """A fresh Mosquitto for this test: plain TCP on 127.0.0.1, anonymous, persistence on."""
    server = MosquittoServer(workdir=tmp_path / "mosquitto").start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path):
    """Start Mosquittos with a configuration of the test's own (TLS, ACLs); all are stopped afterwards."""
    servers = []

    def start(config: str | None = None, extra_config: str = "", port: int | None = None) -> MosquittoServer:
        server = MosquittoServer(
            port=port,
            config=config,
            extra_config=extra_config,
            workdir=tmp_path / f"mosquitto-{len(servers)}",
        )
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the shared material is not at {SHARED} (set KUZET_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def footage(shared_dir) -> Path:
    return shared_dir / "data"


# --- patrols: for test modules that define a ``centre`` (patrol_helpers.Centre) ------------------------------


@pytest.fixture
def camera(mosquitto):
    """A street camera raising events over the test's broker (``patrol_helpers.Camera``). Modules whose
    cameras are of another kind define a ``camera`` of their own."""
    from patrol_helpers import Camera

    device = Camera(mosquitto.url)
    yield device
    device.stop()


@pytest.fixture
def badges(tmp_path, mosquitto, centre):
    """``start(device, at, **sections)``: a badge agent, registered with the module's ``centre`` before it is
    returned; all are stopped after the test."""
    from patrol_helpers import start_badge

    started = []

    def start(device, at, **sections):
        agent = start_badge(tmp_path, mosquitto.url, device, at, centre, **sections)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


# --- signed updates -----------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """(folder, server): a local HTTP server of ``folder``, for update bundles fetched by URL."""
    from update_helpers import Served

    (tmp_path / "www").mkdir()
    server = Served(tmp_path / "www")
    yield tmp_path / "www", server
    server.close()
