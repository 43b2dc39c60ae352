"""Fixtures for the red-team regression tests (issue 17): a central serving its page on a free port."""

from __future__ import annotations

import pytest
from hardening_http import make_central

from kuzet.central.web.server import WebServer


@pytest.fixture
def central(tmp_path):
    central = make_central(tmp_path)
    yield central
    central.close()


@pytest.fixture
def web(central):
    server = WebServer(central, host="127.0.0.1", port=0).start()
    yield server
    server.stop()
