"""Fixtures of the edge's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def served(tmp_path):
    """(folder, server): a local HTTP server of ``folder``, for update bundles fetched by URL."""
    from support.updates import Served

    (tmp_path / "www").mkdir()
    server = Served(tmp_path / "www")
    yield tmp_path / "www", server
    server.close()
