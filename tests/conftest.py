"""What every layer's tests use: a real Mosquitto on a free port, the material in ../shared, and the ``broker``
marker, put on every test that needs Mosquitto.

The layers' own fixtures are in <layer>/conftest.py; helpers are imported as ``from support.<module> import``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kuzet.central.broker import EmbeddedBroker, MosquittoServer, free_port

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KUZET_SHARED", REPO.parent / "shared"))

# The code is imported only as the installed ``kuzet.<part>``; with the repository root on sys.path a bare
# ``import shared`` would load shared/ a second time, under another name. pytest runs in importlib mode
# (pyproject) so it adds no test folder itself, but ``python -m pytest`` puts the current directory first on
# sys.path (Python does, before pytest starts): it is taken off here, before any test module is imported.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO]

# A test needs Mosquitto when one of these is among its fixtures, directly or through other fixtures. A test
# that starts one by other means (a subprocess, a bench script) carries ``pytest.mark.broker`` itself.
BROKER_FIXTURES = frozenset({"mosquitto", "mosquitto_factory", "nats"})


def pytest_collection_modifyitems(items):
    """``broker`` on every test that uses a Mosquitto fixture, so that ``pytest -m "not broker"`` runs the
    fast tests alone."""
    for item in items:
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(autouse=True)
def _broker_only_when_marked(request, monkeypatch):
    """A test without the ``broker`` marker that starts a broker in-process fails, naming the marker."""
    if request.node.get_closest_marker("broker") is None:

        def refuse(self, *args, **kwargs):
            raise AssertionError(f"{request.node.nodeid} starts an MQTT broker: mark it pytest.mark.broker")

        monkeypatch.setattr(MosquittoServer, "start", refuse)
        monkeypatch.setattr(EmbeddedBroker, "start", refuse)


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


@pytest.fixture
def nats(tmp_path):
    """A fresh NATS server with its MQTT listener and JetStream, on free ports (``support.nats``): the second
    broker implementation. Skipped where ``nats-server`` is not installed (.ci/run installs it)."""
    from support.nats import NatsServer, installed

    if not installed():
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
def port() -> int:
    """A TCP port free on 127.0.0.1 now (``kuzet.central.broker.free_port``)."""
    return free_port()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The team's shared material (../shared beside the checkout, or $KUZET_SHARED); the test is skipped,
    saying where it looked, when it is not there."""
    if not SHARED.is_dir():
        pytest.skip(f"the shared material is not at {SHARED} (set KUZET_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def footage(shared_dir) -> Path:
    return shared_dir / "data"
