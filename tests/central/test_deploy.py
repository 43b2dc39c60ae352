"""The region's deployment files: the sample central.toml loads with central's own loader and is a split
central's (PostgreSQL, S3, brokers, a shared subscription), and each systemd unit starts its role with
arguments ``kuzet central`` accepts."""

from __future__ import annotations

import argparse
import configparser
import shlex
from pathlib import Path

import pytest
from support.ingest import REPO

from kuzet.central import cli
from kuzet.central import config as central_config
from kuzet.provisioning import workers
from kuzet.provisioning.site import SitePaths

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


UNIT_WORKERS = [  # (unit, instance) and the worker it runs as on host "host1"
    (("kuzet-central-ingest.service", ""), "ingest-host1"),
    (("kuzet-central-ingest@.service", "9471"), "ingest-host1-9471"),
    (("kuzet-central-ingest@.service", "9472"), "ingest-host1-9472"),
    (("kuzet-central-web.service", ""), "web-host1"),
    (("kuzet-central-routing.service", ""), "routing-host1"),
]


def _bound_folder(unit: str, instance: str) -> tuple[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(DEPLOY / "systemd" / unit)
    line = parser["Service"]["BindReadOnlyPaths"].replace("%l", "host1").replace("%i", instance)
    source, target = line.split(":")
    return source, target


def test_each_unit_connects_with_its_own_workers_certificate():
    """One central.toml for every process, a certificate each: each unit binds its worker's folder (what
    'kuzet provision central-worker NAME' makes) where [mqtt.tls] looks, so no two share a client id."""
    tls = central_config.load(DEPLOY / "central-region.toml").mqtt.tls
    bound = tls.cert.parent
    assert tls.key.parent == bound and tls.ca.parent == bound
    for (unit, instance), worker in UNIT_WORKERS:
        source, target = _bound_folder(unit, instance)
        assert (source, target) == (f"/etc/kuzet/workers/{worker}", str(bound)), unit
        assert workers.identity(worker) == f"central-{worker}"  # a name provisioning accepts
    # the file names provisioning writes into a worker's folder
    made = {key: Path(path).name for key, path in workers.tls_section(SitePaths(Path("/site")), "w").items()}
    assert made == {"ca": tls.ca.name, "cert": tls.cert.name, "key": tls.key.name}
