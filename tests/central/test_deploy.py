"""The region's deployment files: the sample central.toml loads with central's own loader and is a split
central's (PostgreSQL, S3, brokers, a shared subscription), and each systemd unit starts its role with
arguments ``kuzet central`` accepts."""

from __future__ import annotations

import argparse
import configparser
import shlex

import pytest
from support.ingest import REPO

from kuzet.central import cli
from kuzet.central import config as central_config

DEPLOY = REPO / "deploy"


def test_the_sample_region_configuration_loads_and_is_split_ready():
    config = central_config.load(DEPLOY / "central-region.toml")
    assert config.store.url.startswith("postgresql://")  # the roles share it: bus, election, records
    assert config.media.s3_endpoint and config.media.s3_bucket
    assert len(config.mqtt.brokers) == 2 and config.mqtt.protocol == "5"
    assert config.ingest.share_group and not config.ingest.accept_unregistered
    assert not config.ingest.client_id  # each worker's own: central-<site>-<role>-<instance>
    assert config.worker.metrics_port


def _exec_start(unit: str, instance: str = "9471") -> argparse.Namespace:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(DEPLOY / "systemd" / unit)
    command = parser["Service"]["ExecStart"].replace("%H", "host1").replace("%i", instance)
    words = shlex.split(command)
    assert words[:2] == ["/opt/kuzet/bin/kuzet", "central"]
    central = argparse.ArgumentParser()
    cli.add_arguments(central)
    return central.parse_args(words[2:])


@pytest.mark.parametrize("role", ["ingest", "web", "routing"])
def test_each_role_has_a_unit_that_runs_it(role):
    args = _exec_start(f"kuzet-central-{role}.service")
    assert (args.action, args.role, args.instance) == ("run", role, "host1")
    assert args.config == "/etc/kuzet/central.toml"


def test_the_ingest_template_names_each_worker_by_its_metrics_port():
    args = _exec_start("kuzet-central-ingest@.service", "9472")
    assert (args.role, args.instance, args.metrics_port) == ("ingest", "host1-9472", 9472)
