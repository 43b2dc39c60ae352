"""Reliability under faults: a camera agent replays real footage into central through a real Mosquitto while
(a) the broker is stopped for ``--outage-s`` seconds (default 60) and started again, and then (b) the camera
agent is killed with SIGKILL in the middle of draining its backlog and restarted. Finally it is stopped with
SIGTERM and central is given time to receive the rest.

    python bench/faults.py --json

Prints ``{"created": N, "stored": N, "duplicates": N, "clips_created": N, "clips_verified": N}``: events the
camera created (its own durable counter) and events in central's store, event states stored twice, clips the
camera finished, and clips central reassembled whose file's SHA-256 is right. ``created == stored``,
``duplicates == 0`` and ``clips_created == clips_verified`` is the pass.
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

from central.broker import MosquittoServer  # noqa: E402
from central.config import CentralConfig  # noqa: E402
from central.context import Central  # noqa: E402
from central.ingest.service import IngestService  # noqa: E402
from edge.delivery import Outbox  # noqa: E402

log = logging.getLogger("faults")
DEVICE = "cam-faults"
FIGURES = ("created", "stored", "duplicates", "clips_created", "clips_verified")

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
            [sys.executable, "-m", "shared.cli", "camera", "--config", str(self.config)],
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
    return {"stored": stored, "duplicates": duplicates, "clips_verified": verified}


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
        {"mqtt": {"url": broker.url}, "ingest": {"clip_check_interval_s": 2, "clip_stalled_after_s": 10}}
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

    try:
        camera.start()
        wait(online, 60, "the camera to come online")
        log.info("phase 1: %.0f s of normal running", phase_s)
        time.sleep(phase_s)

        log.info("fault (a): the broker stops for %.0f s", outage_s)
        broker.stop()
        time.sleep(outage_s)
        broker.start()
        log.info("broker is back; the camera drains its backlog")
        time.sleep(min(5.0, phase_s))

        log.info("fault (b): SIGKILL the camera mid-stream, then start it again")
        camera.kill()
        # The broker publishes the camera's last will ("offline", retained) when its connection dies.
        offline_after_kill = wait(lambda: not online(), 15, "the camera's last will")
        camera.start()
        time.sleep(phase_s)

        log.info("stopping the camera with SIGTERM")
        code = camera.terminate()
        log.info("camera exited with %s", code)
        outbox = Outbox(state / "outbox.db")
        created = outbox.counter("events_created")
        clips_created = outbox.counter("clips_created")
        left = outbox.depth_by_kind()
        outbox.close()
        if left:
            log.warning("the camera exited with undelivered messages in its outbox: %s", left)

        def complete() -> bool:
            figures = central_figures(central, DEVICE)
            return figures["stored"] >= created and figures["clips_verified"] >= clips_created

        wait(complete, settle_s, "central to store every event and clip")
        figures = central_figures(central, DEVICE)
        log.info("ingest counters: %s", ingest.counters.as_dict())
        return {
            "created": created,
            "stored": figures["stored"],
            "duplicates": figures["duplicates"],
            "clips_created": clips_created,
            "clips_verified": figures["clips_verified"],
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

    from models import store

    kuzet_home = Path(os.environ.get("KUZET_HOME", store.kuzet_home()))
    os.environ["KUZET_HOME"] = str(kuzet_home)
    store.ensure(allow_download=True, progress=False)
    with tempfile.TemporaryDirectory(prefix="kuzet-faults-") as tmp:
        workdir = args.workdir or Path(tmp)
        figures = run_faults(workdir, args.video.resolve(), kuzet_home, args.outage_s, args.phase_s)
    log.info(
        "camera exit code %s, left in its outbox %s", figures["camera_exit_code"], figures["left_in_outbox"]
    )
    figures = {key: figures[key] for key in FIGURES}
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    ok = (
        figures["created"] == figures["stored"]
        and figures["duplicates"] == 0
        and figures["clips_created"] == figures["clips_verified"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
