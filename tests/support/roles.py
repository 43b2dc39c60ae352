"""Central split over processes for the tests: each worker a process of its own running one role, as
``kuzet central run --role ROLE --instance NAME`` runs it (``central.service.serve``), so that it can be
killed with SIGKILL. The workers share one data folder (the store) and a PostgreSQL (live bus, leader
election)."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from kuzet.central.broker import free_port
from kuzet.central.config import CentralConfig
from support.ingest import REPO

SCRIPT = """
import json, logging, sys
from kuzet.central.config import CentralConfig
from kuzet.central.context import Central
from kuzet.central.service import serve
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(name)s: %(message)s")
config = CentralConfig.model_validate(json.loads(sys.argv[1]))
sys.exit(serve(Central(config=config, data_dir=sys.argv[2]), role=sys.argv[3], instance=sys.argv[4],
               bus_url=sys.argv[5]))
"""


def listening_port() -> int:
    """A free port below the kernel's range for outgoing connections. A port picked there (``free_port``) can be
    taken by any connection made before the worker binds it: in bench/scale.py ten thousand devices reconnect
    through a broker's outage, and a restarted ingest worker lost its port each time, never came back, and its
    session's messages stayed at the broker."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    for _ in range(100):
        port = random.randrange(min(20000, first - 1000), first)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class WorkerProcess:
    def __init__(self, config: CentralConfig, data_dir: Path, role: str, instance: str, bus_url: str):
        self.role, self.instance = role, instance
        self.metrics_port = listening_port()
        config = config.model_copy(deep=True)
        config.worker.metrics_port = self.metrics_port
        self.log_path = data_dir.parent / f"{role}-{instance}.log"
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCRIPT,
                json.dumps(config.model_dump(mode="json")),
                str(data_dir),
                role,
                instance,
                bus_url,
            ],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def health(self) -> dict | None:
        """The worker's /healthz body (200 or 503), or None while it does not answer."""
        url = f"http://127.0.0.1:{self.metrics_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())
        except OSError:
            return None

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def leading(self) -> bool:
        return bool((self.health() or {}).get("leading"))

    def kill(self) -> None:
        """SIGKILL: no goodbye, no clean step-down."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
