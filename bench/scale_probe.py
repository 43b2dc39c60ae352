"""Where bench/scale.py's time goes, measured apart: each part's CPU over the load (the devices' simulators,
the brokers, each central worker, PostgreSQL, SeaweedFS, the bench itself, and whatever else shares the
machine), and the quantiles of a worker's Prometheus histogram. On two shared cores, a latency figure means
little without knowing which of these was waiting for which."""

from __future__ import annotations

import os
import threading
import time

import psutil


class CpuByPart:
    """CPU seconds per part of the run, sampled every ``every_s`` from /proc, as cores in use on average.

    A process is put in a part by what it is (its name, its command line, its parent): a killed and
    restarted worker adds both lives to its part, as long as each lived over one sample."""

    def __init__(self, postgres_dir: str | None = None, every_s: float = 2.0):
        # postgres_dir: the run's own cluster, to tell it from the machine's PostgreSQL
        self.postgres_dir, self.every_s = postgres_dir, every_s
        self.me = os.getpid()
        self._parts: dict[tuple[int, float], str] = {}  # (pid, created) -> part
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], float] = {}
        self._machine: list[psutil._common.scputimes] = []
        self._began = self._ended = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-by-part", daemon=True)

    def start(self) -> CpuByPart:
        self._began = time.monotonic()
        self._machine.append(psutil.cpu_times())
        self._sample(first=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()
        self._ended = time.monotonic()
        self._machine.append(psutil.cpu_times())
        return self.cores()

    def cores(self) -> dict:
        elapsed = max(self._ended - self._began, 1e-9)
        parts: dict[str, float] = {}
        for key, last in self._last.items():
            part = self._parts[key]
            parts[part] = parts.get(part, 0.0) + last - self._first.get(key, 0.0)
        before, after = self._machine[0], self._machine[-1]
        idle = (after.idle - before.idle) + (after.iowait - before.iowait)
        whole = sum(after) - sum(before)
        return {
            "seconds": round(elapsed, 1),
            "machine_cores": psutil.cpu_count(),
            "machine_busy_cores": round((whole - idle) / elapsed, 2),
            "by_part": {p: round(s / elapsed, 2) for p, s in sorted(parts.items(), key=lambda i: -i[1])},
        }

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        for process in psutil.process_iter(["pid", "create_time", "cpu_times"]):
            info = process.info
            if info["cpu_times"] is None:
                continue
            key = (info["pid"], info["create_time"])
            if key not in self._parts:
                self._parts[key] = self._part(process)
            used = info["cpu_times"].user + info["cpu_times"].system
            if first:
                self._first[key] = used
            self._last[key] = used

    def _part(self, process: psutil.Process) -> str:
        try:
            name, cmdline = process.name(), process.cmdline()
            chain = [process, *process.parents()]
            ancestry = [" ".join(p.cmdline()) for p in chain]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return "other"
        if process.pid == self.me:
            return "bench"
        if name == "mosquitto":
            return "brokers"
        if name == "weed":
            return "seaweedfs"
        if name.startswith("postgres"):
            ours = self.postgres_dir and any(self.postgres_dir in line for line in ancestry)
            return "postgresql" if ours else "other"
        if "--role" in cmdline or "kuzet.central" in " ".join(cmdline):
            return _worker(cmdline)
        if process.ppid() == self.me and any("multiprocessing" in part for part in cmdline):
            return "devices"
        return "other"


def _worker(cmdline: list[str]) -> str:
    # tests/support/roles.py runs ``python -c SCRIPT CONFIG DATA_DIR ROLE INSTANCE BUS_URL``
    if len(cmdline) >= 7 and cmdline[1] == "-c":
        return f"central-{cmdline[5]}-{cmdline[6]}" if cmdline[5] != "web" else "central-web"
    return "central"


def histogram_quantiles(metrics_text: str, name: str, quantiles=(0.5, 0.99)) -> dict[str, float | None]:
    """Quantiles of a Prometheus histogram from its exposition text: each the upper bound of the bucket it
    falls in (None past the last finite bucket), with the count."""
    buckets = []
    for line in metrics_text.splitlines():
        if line.startswith(name + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    figures: dict[str, float | None] = {"count": total}
    for q in quantiles:
        bound = next((b for b, n in buckets if total and n >= q * total), None)
        figures[f"p{round(q * 100):g}"] = None if bound in (None, float("inf")) else bound
    return figures
