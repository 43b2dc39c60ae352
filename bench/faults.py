"""Reliability under faults: a camera agent replays real footage into central through a real Mosquitto while
(a) the broker is stopped for ``--outage-s`` seconds (default 60) and started again, and then (b) the camera
agent is killed with SIGKILL in the middle of draining its backlog and restarted. Finally it is stopped with
SIGTERM and central is given time to receive the rest.

    python bench/faults.py --json

Prints ``{"created": N, "stored": N, "duplicates": N, "clips_created": N, "clips_verified": N, ...}``: events
the camera created (its own durable counter) and events in central's store, event states stored twice, clips
the camera started (counted when recording starts, so a clip cut short by the kill and never delivered shows),
and clips central reassembled whose file's SHA-256 is right. After those, the figures that show the faults
bit: ``redelivered`` (messages central received again and dropped by id: the wire's at-least-once),
``created_during_outage`` and ``backlog_in_outage`` (events made and messages queued while the broker was down),
``backlog_at_kill`` and ``recording_at_kill`` (what the SIGKILLed camera left in its outbox, and clips it was
recording), ``clips_recovered`` and ``clips_lost`` (clips the restarted camera finished from a partial file, or
reported lost), and ``open_in_central`` (stored events not closed at the end).

The pass: ``created == stored``, ``duplicates == 0``, ``clips_created == clips_verified``, nothing open in
central, and the faults really happened (events created during the outage, a backlog then and at the kill).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kuzet.central.broker import MosquittoServer  # noqa: E402
from kuzet.central.config import CentralConfig  # noqa: E402
from kuzet.central.context import Central  # noqa: E402
from kuzet.central.ingest.service import IngestService  # noqa: E402
from kuzet.edge.delivery import Outbox  # noqa: E402

log = logging.getLogger("faults")
DEVICE = "cam-faults"
FIGURES = ("created", "stored", "duplicates", "clips_created", "clips_verified")  # the keys, first
FAULT_FIGURES = (
    "redelivered",
    "created_during_outage",
    "backlog_in_outage",
    "backlog_at_kill",
    "recording_at_kill",
    "clips_recovered",
    "clips_lost",
    "open_in_central",
)

CAMERA_TOML = """
[device]
id = "{device}"
lat = 52.2871
lon = 76.9665

[mqtt]
url = "{url}"
keepalive_s = 5

[source]
kind = "file"
path = "{video}"
loop = true
realtime = true

[[zones]]
name = "west"
polygon = [[0, 0], [384, 0], [384, 576], [0, 576]]

[[lines]]
name = "middle"
points = [[384, 0], [384, 576]]

[[rules]]
name = "west-entry"
type = "zone_enter"
zone = "west"

[[rules]]
name = "middle-crossing"
type = "line_crossing"
line = "middle"

[[rules]]
name = "crowd"
type = "crowd"
zone = "west"
max_count = 4

[evidence]
clip_min_severity = "medium"
pre_roll_s = 2
post_roll_s = 2
max_clip_s = 10

[outbox]
backlog_per_s = 20

[health]
heartbeat_s = 2

[storage]
dir = "{state}"
"""


class Camera:
    """The camera agent as a separate process, as it runs on a board: it can be killed for real."""

    def __init__(self, config: Path, workdir: Path, kuzet_home: Path):
        self.config, self.workdir, self.kuzet_home = config, workdir, kuzet_home
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        env = dict(os.environ, KUZET_HOME=str(self.kuzet_home))
        log_file = (self.workdir / f"camera-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kuzet.shared.cli", "camera", "--config", str(self.config)],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout_s: float = 90) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def _count(db_path: Path, sql: str, args=()) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, args).fetchone()[0]


class CameraState:
    """The camera's outbox database, read from outside while the camera process writes it (read-only)."""

    def __init__(self, path: Path):
        self.path = path

    def _rows(self, sql: str, args=()) -> list[tuple]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # a table the camera has not created yet
            return []
        finally:
            conn.close()

    def _one(self, sql: str, args=()) -> int:
        rows = self._rows(sql, args)
        return rows[0][0] if rows else 0

    def depth(self) -> int:
        return self._one("SELECT COUNT(*) FROM outbox")

    def counter(self, name: str) -> int:
        return self._one("SELECT COALESCE(MAX(value), 0) FROM counters WHERE name = ?", (name,))

    def recording(self) -> int:
        """Clips promised to central (their event went out) and not yet queued: being recorded."""
        return self._one("SELECT COUNT(*) FROM promised_clips")

    def smallest_recording_bytes(self) -> int:
        """Bytes written so far of the least advanced clip being recorded (0 when none is)."""
        sizes = []
        for (recording,) in self._rows("SELECT recording FROM promised_clips"):
            path = Path(recording)
            sizes.append(path.stat().st_size if path.exists() else 0)
        return min(sizes, default=0)


def central_figures(central: Central, device: str) -> dict[str, int]:
    db = central.db_path
    stored = _count(db, "SELECT COUNT(*) FROM events WHERE device = ?", (device,))
    # The same state of an event (event_id, seq) stored more than once would be a duplicate.
    duplicates = _count(
        db,
        "SELECT COUNT(*) - COUNT(DISTINCT u.event_id || ':' || u.seq) FROM event_updates u "
        "JOIN events e ON e.event_id = u.event_id WHERE e.device = ?",
        (device,),
    )
    verified = 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.sha256, m.path FROM clips c JOIN media m ON m.sha256 = c.sha256 "
            "WHERE c.device = ? AND c.state = 'verified'",
            (device,),
        ).fetchall()
    for sha256, relative in rows:
        path = central.media_dir / relative
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            verified += 1
    open_events = _count(
        db, "SELECT COUNT(*) FROM events WHERE device = ? AND coalesce(edge_state, '') != 'closed'", (device,)
    )
    lost = _count(db, "SELECT COUNT(*) FROM clips WHERE device = ? AND state = 'lost'", (device,))
    return {
        "stored": stored,
        "duplicates": duplicates,
        "clips_verified": verified,
        "open_in_central": open_events,
        "clips_lost_in_central": lost,
    }


def wait(condition, timeout_s: float, what: str) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    log.warning("gave up waiting for %s after %.0f s", what, timeout_s)
    return False


def run_faults(
    workdir: Path,
    video: Path,
    kuzet_home: Path,
    outage_s: float = 60.0,
    phase_s: float = 20.0,
    settle_s: float = 120.0,
) -> dict[str, int]:
    """Run the whole scenario in ``workdir``; return the figures (also the camera's own counters)."""
    workdir.mkdir(parents=True, exist_ok=True)
    # MosquittoServer keeps the user it was started as, so its persistence survives the restart below.
    broker = MosquittoServer(workdir=workdir / "mosquitto").start()
    config = CentralConfig.model_validate(
        {
            "mqtt": {"url": broker.url},
            # The simulated camera is not registered.
            "ingest": {"clip_check_interval_s": 2, "clip_stalled_after_s": 10, "accept_unregistered": True},
        }
    )
    central = Central(config=config, data_dir=workdir / "central")
    ingest = IngestService(central).start()
    state = workdir / "camera-state"
    camera_toml = workdir / "camera.toml"
    camera_toml.write_text(CAMERA_TOML.format(device=DEVICE, url=broker.url, video=video, state=state))
    camera = Camera(camera_toml, workdir, kuzet_home)

    def online() -> bool:
        return bool(
            _count(
                central.db_path, "SELECT COUNT(*) FROM devices WHERE device_id = ? AND online = 1", (DEVICE,)
            )
        )

    device_state = CameraState(state / "outbox.db")
    try:
        camera.start()
        wait(online, 60, "the camera to come online")
        log.info("phase 1: %.0f s of normal running", phase_s)
        time.sleep(phase_s)

        log.info("fault (a): the broker stops for %.0f s", outage_s)
        created_before = device_state.counter("events_created")
        broker.stop()
        backlog_in_outage = 0
        outage_ends = time.monotonic() + outage_s
        while time.monotonic() < outage_ends:
            backlog_in_outage = max(backlog_in_outage, device_state.depth())
            time.sleep(0.5)
        created_during_outage = device_state.counter("events_created") - created_before
        broker.start()
        log.info(
            "broker is back; %d event(s) made and up to %d message(s) queued while it was away",
            created_during_outage,
            backlog_in_outage,
        )

        log.info("fault (b): SIGKILL the camera mid-stream, then start it again")
        # Kill it with work in hand: while its backlog drains, and while it records a clip (one well under way:
        # a clip killed in its first instant has nothing on disk to recover, and would rightly count as lost).
        wait(
            lambda: (
                0 < device_state.depth() < backlog_in_outage
                and device_state.smallest_recording_bytes() > 64_000
            ),
            max(20.0, outage_s / 2),
            "the backlog draining while a clip is recorded",
        )
        camera.kill()
        backlog_at_kill = device_state.depth()  # what the killed process left behind, unacknowledged
        recording_at_kill = device_state.recording()
        log.info(
            "killed with %d message(s) queued and %d clip(s) recording", backlog_at_kill, recording_at_kill
        )
        # The broker publishes the camera's last will ("offline", retained) when its connection dies.
        offline_after_kill = wait(lambda: not online(), 15, "the camera's last will")
        camera.start()
        # SIGTERM drains the outbox only while connected: a camera still starting (its model loading on a
        # busy machine) would rightly keep its backlog on disk, and the run would not show the clean exit.
        wait(online, 60, "the restarted camera online again")
        time.sleep(phase_s)

        log.info("stopping the camera with SIGTERM")
        code = camera.terminate()
        log.info("camera exited with %s", code)
        outbox = Outbox(state / "outbox.db")
        created = outbox.counter("events_created")
        clips_created = outbox.counter("clips_created")
        clips_lost = outbox.counter("clips_lost")
        clips_recovered = outbox.counter("clips_recovered")
        left = outbox.depth_by_kind()
        outbox.close()
        if left:
            log.warning("the camera exited with undelivered messages in its outbox: %s", left)

        def complete() -> bool:
            figures = central_figures(central, DEVICE)
            accounted = figures["clips_verified"] + figures["clips_lost_in_central"]
            return (
                figures["stored"] >= created and accounted >= clips_created and not figures["open_in_central"]
            )

        wait(complete, settle_s, "central to store every event and clip")
        figures = central_figures(central, DEVICE)
        log.info("ingest counters: %s", ingest.counters.as_dict())
        return {
            "created": created,
            "stored": figures["stored"],
            "duplicates": figures["duplicates"],
            "clips_created": clips_created,
            "clips_verified": figures["clips_verified"],
            # The faults bit: re-deliveries on the wire, work made and queued during the outage, at the kill.
            "redelivered": ingest.counters.duplicates,
            "created_during_outage": created_during_outage,
            "backlog_in_outage": backlog_in_outage,
            "backlog_at_kill": backlog_at_kill,
            "recording_at_kill": recording_at_kill,
            "clips_recovered": clips_recovered,
            "clips_lost": clips_lost,
            "open_in_central": figures["open_in_central"],
            # Beyond the figures: how the camera ended and what it left behind.
            "camera_exit_code": code,
            "left_in_outbox": sum(left.values()),
            "online_after_stop": online(),
            "offline_after_kill": offline_after_kill,
        }
    finally:
        camera.cleanup()
        ingest.stop()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON figures on stdout")
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared/data/pets09-s2l1/vtest.avi")
    parser.add_argument("--outage-s", type=float, default=60.0, help="how long the broker is down (s)")
    parser.add_argument("--phase-s", type=float, default=20.0, help="running time between faults (s)")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the broker, central and the camera process are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.video.is_file():
        print(f"footage not found: {args.video} (pass --video)", file=sys.stderr)
        return 2

    from kuzet.models import store

    kuzet_home = Path(os.environ.get("KUZET_HOME", store.kuzet_home()))
    os.environ["KUZET_HOME"] = str(kuzet_home)
    store.ensure(allow_download=True, progress=False)
    with tempfile.TemporaryDirectory(prefix="kuzet-faults-") as tmp:
        workdir = args.workdir or Path(tmp)
        figures = run_faults(workdir, args.video.resolve(), kuzet_home, args.outage_s, args.phase_s)
    log.info(
        "camera exit code %s, left in its outbox %s", figures["camera_exit_code"], figures["left_in_outbox"]
    )
    figures = {key: figures[key] for key in FIGURES + FAULT_FIGURES}
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    return 0 if passed(figures) else 1


def passed(figures: dict[str, int]) -> bool:
    delivered = (
        figures["created"] == figures["stored"]
        and figures["duplicates"] == 0
        and figures["clips_created"] == figures["clips_verified"]
        and figures["open_in_central"] == 0
    )
    faults_bit = (
        figures["created_during_outage"] > 0
        and figures["backlog_in_outage"] > 0
        and figures["backlog_at_kill"] > 0
    )
    return delivered and faults_bit


if __name__ == "__main__":
    sys.exit(main())
