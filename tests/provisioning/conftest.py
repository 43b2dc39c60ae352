"""Fixtures of the provisioning tests: a site made by ``kuzet provision site-init`` with its real Mosquitto."""

from __future__ import annotations

import getpass

import pytest
from support.provision import SITE

from kuzet.central.broker import free_port
from kuzet.provisioning.site import SiteSettings
from kuzet.provisioning.site_init import init_site


@pytest.fixture
def site(tmp_path, mosquitto_factory):
    """(paths, settings, broker): a site's CA, certificates and broker config, served by a real Mosquitto."""
    port = free_port()
    settings = SiteSettings(
        site=SITE, broker_hosts=["localhost", "127.0.0.1"], broker_port=port, broker_user=getpass.getuser()
    )
    paths = init_site(tmp_path / "site", settings, listen="127.0.0.1")
    broker = mosquitto_factory(config=paths.mosquitto_conf.read_text(), port=port)
    return paths, settings, broker
