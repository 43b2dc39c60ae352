"""Central as bench/scale.py runs it: one process on SQLite (the baseline), or a region split over processes
as ``kuzet central run --role`` runs it (three ingest workers in one ``$share`` group, one web worker, a
routing leader and its standby, on PostgreSQL), with the faults the bench injects into the region.

Each region worker connects to the brokers with a certificate of its own from the site's CA: the brokers
take the certificate's CN as the client id (``use_username_as_clientid``), so two workers sharing central's
certificate would push each other off. bench/scale.py makes the site with ``worker_names()`` as site-init's
``--central-worker``s (provisioning/workers.py): worker ``ingest-1`` is CN ``central-ingest-1``, with central's
lines in the ACL and its own folder under ``central/workers/``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from support.postgres import PostgresCluster, find_bin_dir
from support.roles import WorkerProcess

from bench.scale_probe import histogram_quantiles
from kuzet.central.broker import free_port, wait_for_port
from kuzet.central.config import CentralConfig
from kuzet.central.context import Central
from kuzet.central.service import start_parts
from kuzet.central.store import portable
from kuzet.provisioning import workers
from kuzet.provisioning.site import SitePaths
from kuzet.shared.config import TlsSection

INGEST_WORKERS = 3
ROUTING = ("a", "b")
RESTART_AFTER_S = 1.0  # the systemd units' RestartSec


def worker_names() -> list[str]:
    """The region's workers, as site-init's ``--central-worker`` names."""
    return [f"ingest-{n}" for n in range(INGEST_WORKERS)] + ["web"] + [f"routing-{name}" for name in ROUTING]


class SingleProcess:
    """Central as one process composes it (``service.start_parts``) in the bench's own process."""

    name = "one process"

    postgres_dir = None  # SQLite

    def __init__(self, config: CentralConfig, data_dir: Path):
        self.central = Central(config=config, data_dir=data_dir)
        self.parts = None

    def start(self, running: contextlib.ExitStack) -> None:
        self.parts = start_parts(self.central, running, web_host="127.0.0.1", web_port=0)
        if not self.parts.ingest.subscribed.is_set():
            raise SystemExit("central's ingest could not subscribe")

    def faults(self, seconds: float, faults: dict) -> list[threading.Thread]:
        return []  # nothing to kill but the broker: one process is all of central

    def settle(self) -> None:
        if self.parts.routing is not None:
            self.parts.routing.drain(timeout_s=30)

    def workers(self, seconds: float) -> dict:
        counters = self.parts.ingest.counters
        return {"central": {"stored": counters.stored, "stored_per_s": round(counters.stored / seconds, 1)}}


class Region:
    """Every worker a process of its own (tests/support/roles.py), all on one throw-away PostgreSQL."""

    name = "region"

    def __init__(self, config: CentralConfig, data_dir: Path, site: SitePaths, running: contextlib.ExitStack):
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit("PostgreSQL's initdb and pg_ctl are missing (apt-get install postgresql)")
        # Each row's commit time, for the store's latency (``StoredWatcher.stored_at``) without polling the store.
        cluster = PostgresCluster(bin_dir, {"track_commit_timestamp": "on"}).start()
        running.callback(cluster.stop)
        self.postgres_dir = str(cluster.root)
        self.url = cluster.create_database("scale")
        update = {
            "store": config.store.model_copy(update={"url": self.url}),
            "mqtt": config.mqtt.model_copy(update={"protocol": "5"}),  # shared subscriptions
            "ingest": config.ingest.model_copy(update={"share_group": "ingest"}),
        }
        self.config = config.model_copy(update=update)
        self.central = Central(config=self.config, data_dir=data_dir)  # the schema; registering, accounting
        self.site = site
        self.workers_by_name: dict[str, WorkerProcess] = {}
        self.stored_before_kill: dict[str, float] = {}

    def _start_worker(self, role: str, instance: str) -> WorkerProcess:
        worker_name = f"{role}-{instance}" if role != "web" else "web"
        name = workers.identity(worker_name)
        tls = TlsSection.model_validate(workers.tls_section(self.site, worker_name))
        config = self.config.model_copy(update={"mqtt": self.config.mqtt.model_copy(update={"tls": tls})})
        if role == "web":
            config = config.model_copy(update={"http": config.http.model_copy(update={"port": free_port()})})
        worker = WorkerProcess(config, self.central.data_dir, role, instance, self.url)
        if role == "web":
            wait_for_port("127.0.0.1", config.http.port, 60)
        self.workers_by_name[name] = worker
        return worker

    def start(self, running: contextlib.ExitStack) -> None:
        running.callback(self._stop_all)
        ingest = [self._start_worker("ingest", str(n)) for n in range(INGEST_WORKERS)]
        self._start_worker("web", "0")
        leader = self._start_worker("routing", ROUTING[0])
        _until(leader.leading, 60)
        self._start_worker("routing", ROUTING[1])
        _until(lambda: all((w.health() or {}).get("status") == "ok" for w in ingest), 120)

    def _stop_all(self) -> None:
        for worker in self.workers_by_name.values():
            worker.stop()

    def faults(self, seconds: float, faults: dict) -> list[threading.Thread]:
        """An ingest worker SIGKILLed at half the run (restarted a second later, as systemd does), the
        routing leader at two thirds (its standby takes over; the dead one comes back as the standby)."""
        threads = [
            threading.Thread(target=self._kill_ingest, args=(seconds / 2, faults), daemon=True),
            threading.Thread(target=self._kill_leader, args=(seconds * 2 / 3, faults), daemon=True),
        ]
        for thread in threads:
            thread.start()
        return threads

    def _kill_ingest(self, after_s: float, faults: dict) -> None:
        time.sleep(after_s)
        name = "central-ingest-1"
        victim = self.workers_by_name[name]
        self.stored_before_kill[name] = _stored(_metrics(victim))
        faults["ingest_killed"] = time.time()
        victim.kill()
        victim.stop()
        time.sleep(RESTART_AFTER_S)
        restarted = self._restart("ingest", "1")
        _until(lambda: (restarted.health() or {}).get("status") == "ok", 120)
        faults["ingest_back"] = time.time()

    def _restart(self, role: str, instance: str, within_s: float = 300.0) -> WorkerProcess:
        """Start a worker again as systemd does (``Restart=always``, ``RestartSec=1``): again a second after
        each exit while it does not stay up. (Its metrics port is picked below the ports outgoing connections
        take, ``support.roles.listening_port``; picked among them, the devices' ten thousand connections took
        it before the worker could bind it, and a worker given up on after 30 s left its session's share of
        the messages at the broker: lost, as far as the run could tell.)"""
        deadline = time.monotonic() + within_s
        while True:
            worker = self._start_worker(role, instance)
            while time.monotonic() < deadline and worker.process.poll() is None and worker.health() is None:
                time.sleep(0.2)
            if worker.process.poll() is None or time.monotonic() >= deadline:
                return worker
            time.sleep(RESTART_AFTER_S)

    def _kill_leader(self, after_s: float, faults: dict) -> None:
        time.sleep(after_s)
        routing = {n: self.workers_by_name[f"central-routing-{n}"] for n in ROUTING}
        leading = [n for n, w in routing.items() if w.leading()]
        if len(leading) != 1:
            faults["leader_error"] = f"{len(leading)} routing workers lead"
            return
        (dead,) = leading
        standby = next(w for n, w in routing.items() if n != dead)
        faults["leader_killed"] = time.time()
        routing[dead].kill()
        routing[dead].stop()
        _until(standby.leading, 60, every_s=0.02)
        faults["leader_back"] = time.time()
        self._restart("routing", dead)

    def settle(self) -> None:
        # The leader has applied what ingest stored for it when routing_inbox is empty.
        _until(
            lambda: portable.row(self.central.db(), "SELECT count(*) AS n FROM routing_inbox")["n"] == 0, 60
        )

    def workers(self, seconds: float) -> dict:
        """Each ingest worker's messages stored (heartbeats and positions too) per second of the load, and how
        long its batches' first messages waited from arriving to their commit (this life of the worker)."""
        figures = {}
        for name, worker in self.workers_by_name.items():
            if "ingest" in name:
                text = _metrics(worker)
                stored = _stored(text) + self.stored_before_kill.get(name, 0)
                figures[name] = {
                    "stored": int(stored),
                    "stored_per_s": round(stored / seconds, 1),
                    "arrival_to_commit_s": histogram_quantiles(text, "kuzet_ingest_delay_seconds"),
                }
        return figures


def _metrics(worker: WorkerProcess) -> str:
    """The worker's Prometheus text; empty if it does not answer (killed, restarting)."""
    try:
        return worker.metrics()
    except OSError:
        return ""


def _stored(metrics_text: str) -> float:
    line = next((li for li in metrics_text.splitlines() if li.startswith("kuzet_ingest_stored_total ")), None)
    return float(line.split()[1]) if line else 0.0


def _until(condition, timeout_s: float, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s} s waiting for central's workers")
        time.sleep(every_s)
