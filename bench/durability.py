"""Durability under faults (issue 17): a device sends QoS 1 events at ``--rate`` a second (default 500, and a
small snapshot every 100 ms) through a real Mosquitto into central, while, one scenario after another:

- ``central_kill``: central (a process of its own) is SIGKILLed and started again 3 s later;
- ``broker_kill``: the broker is SIGKILLed and started again 3 s later on its own persistence;
- ``broker_replace``: the broker is SIGKILLed and a FRESH one (new persistence folder) takes its port 3 s later;
- ``db_disk_full``: the filesystem of central's database is filled for 3 s, then freed;
- ``media_disk_full``: the filesystem of central's media is filled for 3 s, then freed.

    python bench/durability.py --json [--seconds 20] [--scenarios broker_replace,central_kill]

Prints ``{"scenarios": {name: {"acked": N, "stored": N, "lost": N, "recovered_s": X}}}``: ``acked`` the unique
messages the broker acknowledged to the device (PUBACKs), ``stored`` how many of them central has (events by
message id, snapshots by their bytes' SHA-256), ``lost = acked - stored``, and ``recovered_s`` the seconds from
the end of the fault until the last moment central lacked something acknowledged more than 2 s before (null:
it still lacked some ``--settle-s`` after sending stopped). The target is ``lost`` 0 everywhere.

The broker is a plain Mosquitto (TCP on 127.0.0.1, anonymous) with the persistence settings the provisioned
site's broker has (a save every ``BROKER_AUTOSAVE_S``); not mutual TLS, which changes nothing here
but set-up time. Central's data folder and its media folder are small tmpfs filesystems the bench mounts (it
runs as root; without root the disk scenarios are reported as skipped). Everything it starts and mounts is
stopped and unmounted on the way out, also on Ctrl-C or SIGTERM. The device drains a backlog at up to 5,000
messages a second (its default, 20 a second, is for a cellular uplink and would never catch up with 500).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kuzet.central.broker import MosquittoServer, free_port  # noqa: E402
from kuzet.edge.delivery import PRIORITY_EVENT, PRIORITY_SNAPSHOT, DeliverySettings  # noqa: E402
from kuzet.edge.runtime import DeviceRuntime  # noqa: E402
from kuzet.shared import ids, messages, timeutil, topics  # noqa: E402
from kuzet.shared.config import MqttSection  # noqa: E402
from kuzet.shared.mqtt import BROKER_AUTOSAVE_S  # noqa: E402

log = logging.getLogger("durability")
SITE, DEVICE = "pavlodar", "cam-durable"
SCENARIOS = ("central_kill", "broker_kill", "broker_replace", "db_disk_full", "media_disk_full")
DISK_SCENARIOS = ("db_disk_full", "media_disk_full")
FAULT_S = 3.0
SNAPSHOT_EVERY_S = 0.1
BROKER_PERSISTENCE = (
    f"autosave_on_changes false\nautosave_interval {BROKER_AUTOSAVE_S}\n"  # as provisioning's
)
DB_FS_MB, MEDIA_FS_MB = 256, 64
CAUGHT_UP_S = 2.0  # central has recovered once it lacks nothing acknowledged longer ago than this


# --- central, as a process of its own -------------------------------------------------------------------------


def serve_central(data_dir: Path, url: str) -> int:
    """The child: central's ingest on ``data_dir`` until SIGTERM; prints "ready" once subscribed."""
    from kuzet.central.config import CentralConfig
    from kuzet.central.context import Central
    from kuzet.central.ingest.service import IngestService

    config = CentralConfig.model_validate(
        # The simulated device is not provisioned: central takes it as the demo does.
        {"mqtt": {"url": url}, "ingest": {"client_id": "central-durability", "accept_unregistered": True}}
    )
    central = Central(config=config, data_dir=data_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ingest = IngestService(central).start(wait_s=30)
    print("ready", flush=True)
    stop.wait()
    ingest.stop()
    central.close()
    return 0


class CentralProcess:
    def __init__(self, data_dir: Path, url: str, log_path: Path):
        self.data_dir, self.url, self.log_path = data_dir, url, log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-central", str(self.data_dir), self.url],
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("ab"),
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=lambda: self.process.stdout.readline() and ready.set(), daemon=True).start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"central did not start; see {self.log_path}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


# --- the device ---------------------------------------------------------------------------------------------


class Device:
    """A DeviceRuntime sending events at ``rate`` a second and a snapshot every 100 ms; it keeps the ids of
    what it queued and of what the broker acknowledged."""

    def __init__(self, workdir: Path, url: str, rate: int):
        self.rate = rate
        self.runtime = DeviceRuntime(
            kind="camera",
            site=SITE,
            device=DEVICE,
            mqtt=MqttSection(url=url, keepalive_s=5),
            storage=workdir / "device",
            spool_dir=workdir / "device" / "clips",
            spool_limits={},
            status=lambda: messages.Status(device=DEVICE, kind="camera", software_version="0", uptime_s=0),
            heartbeat_s=lambda: 30.0,
            delivery=DeliverySettings(max_inflight=200, backlog_per_s=5000, max_bytes_per_s=20_000_000),
        )
        self.sha256: dict[str, str] = {}  # snapshot message id -> the sha256 central stores it under
        self.acked: dict[str, float] = {}  # message id -> time.monotonic() of its first acknowledgement
        self._rows: dict[int, str] = {}  # outbox row -> message id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)
        outbox = self.runtime.outbox
        name = "mark_delivered" if hasattr(outbox, "mark_delivered") else "delete"  # the code before issue 17
        acknowledge = getattr(outbox, name)

        def acknowledged(row_ids, *args, **kwargs):
            acknowledge(row_ids, *args, **kwargs)
            now = time.monotonic()
            with self._lock:
                for row in row_ids:
                    if row in self._rows:
                        self.acked.setdefault(self._rows.pop(row), now)

        setattr(outbox, name, acknowledged)

    def start(self) -> Device:
        self.runtime.start(wait_s=10)
        self._thread.start()
        return self

    def stop_producing(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def close(self) -> None:
        self.stop_producing()
        self.runtime.stop(drain_s=0)

    def _queue(self, kind: str, message: messages.Envelope, priority: int) -> None:
        with self.runtime.publisher.transaction() as tx:  # mapped before the publisher can see the row
            row = tx.put(
                topics.up(SITE, DEVICE, kind), messages.encode(message), kind=kind, priority=priority
            )
            with self._lock:
                self._rows[row] = message.id

    def _run(self) -> None:
        started, sent, snapshots = time.monotonic(), 0, 0
        while not self._stop.is_set():
            elapsed = time.monotonic() - started
            for _ in range(int(elapsed * self.rate) - sent):
                self._queue("event", _event(), PRIORITY_EVENT)
                sent += 1
            if elapsed >= snapshots * SNAPSHOT_EVERY_S:
                snapshot = _snapshot()
                self.sha256[snapshot.id] = snapshot.sha256
                self._queue("snapshot", snapshot, PRIORITY_SNAPSHOT)
                snapshots += 1
            time.sleep(0.005)


def _event() -> messages.Event:
    now = timeutil.utc_now()
    return messages.Event(
        device=DEVICE,
        event_id=ids.new_id(),
        seq=0,
        state="open",
        event_type="zone_enter",
        severity="low",
        label="person",
        score=0.9,
        started_at=now,
        track_ids=[1],
        box=messages.Box(x=1, y=2, w=3, h=4),
    )


def _snapshot() -> messages.Snapshot:
    data = b"\xff\xd8\xff\xe0" + os.urandom(2048) + b"\xff\xd9"  # unique bytes: stored under their own hash
    return messages.Snapshot(
        device=DEVICE,
        event_id=ids.new_id(),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="image/jpeg",
        width=64,
        height=48,
        data=messages.to_base64(data),
    )


# --- the rig: mounts, broker, central, device; torn down whatever happens ------------------------------------


class Rig(contextlib.ExitStack):
    """Everything one scenario runs on; ``start`` inside ``with`` so that whatever was made is undone."""

    def __init__(self, workdir: Path, rate: int, mounts: bool):
        super().__init__()
        self.workdir, self.rate, self.mounts = workdir, rate, mounts
        self.data_dir = workdir / "central"
        self.port = free_port()
        self.broker: MosquittoServer | None = None
        self.central = CentralProcess(self.data_dir, f"mqtt://127.0.0.1:{self.port}", workdir / "central.log")
        self.device: Device | None = None

    def start(self) -> Rig:
        self.data_dir.mkdir(parents=True)
        if self.mounts:
            self._mount(self.data_dir, DB_FS_MB)
            self._mount(self.data_dir / "media", MEDIA_FS_MB)
        self.broker = self._broker("broker")
        self.callback(self.central.stop)
        self.central.start()
        self.device = Device(self.workdir, self.broker.url, self.rate)
        self.callback(self.device.close)
        self.device.start()
        return self

    def _mount(self, path: Path, size_mb: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True)
        self.callback(subprocess.run, ["umount", "-l", str(path)], check=False)

    def _broker(self, name: str) -> MosquittoServer:
        broker = MosquittoServer(port=self.port, extra_config=BROKER_PERSISTENCE, workdir=self.workdir / name)
        self.callback(broker.stop)
        return broker.start()

    # --- the faults: each returns when the fault is over -------------------------------------------------------

    def central_kill(self) -> None:
        self.central.kill()
        time.sleep(FAULT_S)
        self.central.start()

    def broker_kill(self) -> None:
        self.broker.process.kill()
        self.broker.process.wait()
        time.sleep(FAULT_S)
        self.broker.start()

    def broker_replace(self) -> None:
        self.broker.process.kill()
        self.broker.process.wait()
        time.sleep(FAULT_S)
        self.broker = self._broker("broker-fresh")

    def db_disk_full(self) -> None:
        _fill(self.data_dir / "filler", FAULT_S)

    def media_disk_full(self) -> None:
        _fill(self.data_dir / "media" / "filler", FAULT_S)

    # --- what central has ----------------------------------------------------------------------------------------

    def stored(self) -> set[str]:
        """The ids of the device's messages central has stored."""
        path = self.data_dir / "kuzet.db"
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                found = {row[0] for row in db.execute("SELECT msg_id FROM event_updates")}
                media = {row[0] for row in db.execute("SELECT sha256 FROM media WHERE kind = 'snapshot'")}
        except sqlite3.Error as exc:  # not created yet, or busy: nothing known this time
            log.info("reading central's database: %s", exc)
            return set()
        return found | {message_id for message_id, sha in self.device.sha256.items() if sha in media}


def _fill(path: Path, hold_s: float) -> None:
    """Fill ``path``'s filesystem until it is full, hold it so for ``hold_s``, then free it."""
    chunk = b"\0" * (1 << 20)
    try:
        with path.open("wb") as handle:
            while True:
                handle.write(chunk)
                handle.flush()
    except OSError:
        pass
    try:
        time.sleep(hold_s)
    finally:
        path.unlink(missing_ok=True)


def run_scenario(name: str, workdir: Path, seconds: float, rate: int, settle_s: float) -> dict:
    with Rig(workdir, rate, mounts=name in DISK_SCENARIOS) as rig:
        rig.start()
        device = rig.device
        time.sleep(seconds / 3)
        log.info("%s: fault", name)
        getattr(rig, name)()
        recovered_at = time.monotonic()
        recovered_s, last_behind = None, recovered_at
        production_ends = recovered_at + max(0.0, seconds * 2 / 3 - FAULT_S)
        deadline = production_ends + settle_s
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= production_ends:
                device.stop_producing()
            stored = rig.stored()
            with device._lock:
                acked = dict(device.acked)
            # Recovered for good: from the last moment central lacked something acknowledged CAUGHT_UP_S ago.
            behind = [i for i, at in acked.items() if at <= now - CAUGHT_UP_S and i not in stored]
            if behind or not stored:
                last_behind = now
            drained = device.runtime.outbox.depth() == 0 and device.runtime.connected
            if device._stop.is_set() and not behind and drained and acked.keys() <= stored:
                recovered_s = round(max(0.0, last_behind - recovered_at), 2)
                break
            time.sleep(0.5)
        device.stop_producing()
        time.sleep(1.0)  # the last acknowledgements
        stored = rig.stored()
        with device._lock:
            acked_ids = set(device.acked)
    kept = len(acked_ids & stored)
    return {
        "acked": len(acked_ids),
        "stored": kept,
        "lost": len(acked_ids) - kept,
        "recovered_s": recovered_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON figures on stdout")
    parser.add_argument("--seconds", type=float, default=20.0, help="sending time of each scenario (s)")
    parser.add_argument("--rate", type=int, default=500, help="events a second")
    parser.add_argument("--settle-s", type=float, default=30.0, help="waiting for central after sending (s)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated, of: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--serve-central", nargs=2, metavar=("DATA_DIR", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_central:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        return serve_central(Path(args.serve_central[0]), args.serve_central[1])
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    # SIGTERM unwinds like Ctrl-C: every process and mount is taken down on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(
        level=logging.WARNING if args.json else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    results: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="kuzet-durability-"))
    try:
        for name in names:
            if name in DISK_SCENARIOS and os.geteuid() != 0:
                results[name] = {"skipped": "mounting a small filesystem needs root"}
                continue
            log.info("scenario %s", name)
            results[name] = run_scenario(name, tmp / name, args.seconds, args.rate, args.settle_s)
            log.info("%s: %s", name, results[name])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {"scenarios": results}
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    return 0 if all(r.get("lost", 0) == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
