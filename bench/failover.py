"""Broker failover (issue 15, item 4): a site's primary and standby Mosquittos (separate, not bridged), central's
ingest subscribed on both, and a camera sending QoS 1 events at ``--rate`` a second through its durable outbox.
After ``--seconds`` / 3 the primary is SIGKILLed; the camera moves to the standby ([mqtt] failover_after_s) and
sends again what the primary took shortly before it died. With ``--restart-primary-s`` the primary comes back
(on its own persistence) that long after the kill and the camera returns to it ([mqtt] return_to_primary_s).

    flock /tmp/kuzet-bench.lock python bench/failover.py --json [--seconds 15] [--rate 200]
          [--failover-after-s 2] [--restart-primary-s 5 --return-to-primary-s 3]

Prints ``{"sent": N, "stored": N, "lost": N, "duplicates": N, "resent_copies": N, "broker_failover_s": X,
"stored_again_s": X, "caught_up_s": X, "returned_to_primary_s": X | null, ...}``: ``sent`` the events the camera
queued, ``stored`` the distinct ones central has, ``lost = sent - stored``, ``duplicates`` the events stored
more than once (the target for both is 0), ``resent_copies`` the copies central received and recognised (kept
once). Times from the SIGKILL: ``broker_failover_s`` until the camera is connected to the standby,
``stored_again_s`` until central has stored the first event queued after that (live traffic flows again),
``caught_up_s`` until central has every event queued before it (the outage's backlog and the copies sent again,
which the outbox sends behind live traffic); ``returned_to_primary_s`` from the primary's restart until the
camera is connected to it again. The brokers have the persistence settings of the
provisioned site's broker; plain TCP on 127.0.0.1 (mutual TLS adds ~46 ms per connection, nothing else here).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kuzet.central.broker import MosquittoServer  # noqa: E402
from kuzet.central.config import CentralConfig  # noqa: E402
from kuzet.central.context import Central  # noqa: E402
from kuzet.central.ingest.service import IngestService  # noqa: E402
from kuzet.edge.delivery import PRIORITY_EVENT, DeliverySettings  # noqa: E402
from kuzet.edge.runtime import DeviceRuntime  # noqa: E402
from kuzet.shared import ids, messages, timeutil, topics  # noqa: E402
from kuzet.shared.config import MqttSection  # noqa: E402
from kuzet.shared.mqtt import BROKER_AUTOSAVE_S  # noqa: E402

log = logging.getLogger("failover")
SITE, DEVICE = "pavlodar", "cam-failover"
BROKER_PERSISTENCE = (
    f"autosave_on_changes false\nautosave_interval {BROKER_AUTOSAVE_S}\n"  # as provisioning's
)


class Camera:
    """Events at a steady rate through the outbox; remembers each id and when it was queued."""

    def __init__(self, runtime: DeviceRuntime, rate: int):
        self.runtime, self.rate = runtime, rate
        self.sent: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        topic = topics.up(SITE, DEVICE, "event")
        started, queued = time.monotonic(), 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            for _ in range(due - queued):
                event = messages.Event(
                    device=DEVICE,
                    event_id=ids.new_id(),
                    seq=0,
                    state="open",
                    event_type="loitering",
                    severity="high",
                    label="person",
                    score=0.8,
                    started_at=timeutil.utc_now(),
                )
                self.runtime.publisher.enqueue(
                    topic, messages.encode(event), kind="event", priority=PRIORITY_EVENT
                )
                self.sent.append((event.id, time.monotonic()))
            queued = due
            time.sleep(0.01)

    def start(self) -> Camera:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def wait(condition, timeout_s: float, every_s: float = 0.01) -> float | None:
    """Seconds until ``condition()`` held (checked every ``every_s``), or None."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if condition():
            return time.monotonic() - began
        time.sleep(every_s)
    return None


def stored_ids(central: Central) -> list[str]:
    return [row[0] for row in central.db().execute("SELECT msg_id FROM event_updates").fetchall()]


def is_stored(central: Central, event_id: str) -> bool:
    return (
        central.db().execute("SELECT 1 FROM event_updates WHERE msg_id = ?", (event_id,)).fetchone()
        is not None
    )


def stored_count(central: Central) -> int:
    return central.db().execute("SELECT COUNT(DISTINCT msg_id) FROM event_updates").fetchone()[0]


def run(args, workdir: Path) -> dict:
    primary = MosquittoServer(workdir=workdir / "primary", extra_config=BROKER_PERSISTENCE).start()
    standby = MosquittoServer(workdir=workdir / "standby", extra_config=BROKER_PERSISTENCE).start()
    brokers = [primary.url, standby.url]
    config = CentralConfig.model_validate(
        {"mqtt": {"brokers": brokers}, "ingest": {"accept_unregistered": True}}
    )
    central = Central(config=config, data_dir=workdir / "central")
    ingest = IngestService(central).start()
    runtime = DeviceRuntime(
        kind="camera",
        site=SITE,
        device=DEVICE,
        mqtt=MqttSection(
            brokers=brokers,
            keepalive_s=5,
            failover_after_s=args.failover_after_s,
            return_to_primary_s=args.return_to_primary_s,
        ),
        storage=workdir / "device",
        spool_dir=workdir / "device" / "clips",
        spool_limits={},
        status=lambda: messages.Status(device=DEVICE, kind="camera", software_version="0", uptime_s=0),
        heartbeat_s=lambda: 30.0,
        delivery=DeliverySettings(max_inflight=200, backlog_per_s=5000, max_bytes_per_s=10_000_000),
    ).start()
    camera = Camera(runtime, args.rate).start()
    result: dict = {"failover_after_s": args.failover_after_s, "rate": args.rate}
    try:
        time.sleep(args.seconds / 3)
        primary.process.kill()
        killed = time.monotonic()
        primary.process.wait()
        on_standby = lambda: runtime.connected and runtime.link.url == standby.url  # noqa: E731
        result["broker_failover_s"] = _rounded(wait(on_standby, 60))
        moved = time.monotonic()
        before_move = [event_id for event_id, at in camera.sent if at <= moved]
        wait(lambda: camera.sent[-1][1] > moved, 5)
        first_live = next(event_id for event_id, at in camera.sent if at > moved)
        stored_again = wait(lambda: is_stored(central, first_live), 60, every_s=0.05)
        result["stored_again_s"] = _rounded(None if stored_again is None else time.monotonic() - killed)
        caught_up = wait(lambda: set(before_move) <= set(stored_ids(central)), 120, every_s=0.5)
        result["caught_up_s"] = _rounded(None if caught_up is None else time.monotonic() - killed)
        result["returned_to_primary_s"] = None
        if args.restart_primary_s is not None:
            time.sleep(max(0.0, killed + args.restart_primary_s - time.monotonic()))
            primary.start()
            on_primary = lambda: runtime.connected and runtime.link.url == primary.url  # noqa: E731
            result["returned_to_primary_s"] = _rounded(wait(on_primary, 60 + args.return_to_primary_s))
        time.sleep(max(0.0, killed + args.seconds * 2 / 3 - time.monotonic()))
        camera.stop()
        result["seconds_sent"] = round(camera.sent[-1][1] - camera.sent[0][1], 1)
        sent = {event_id for event_id, _ in camera.sent}
        wait(lambda: stored_count(central) >= len(sent), args.settle_s, every_s=0.2)
        stored = stored_ids(central)
        result |= {
            "sent": len(sent),
            "stored": len(sent & set(stored)),
            "lost": len(sent - set(stored)),
            "duplicates": len(stored) - len(set(stored)),
            "resent_copies": ingest.counters.duplicates,
            "moves": runtime.link.choice.moves,
        }
    finally:
        camera.stop()
        runtime.stop(drain_s=0)
        ingest.stop()
        central.close()
        primary.stop()
        standby.stop()
    return result


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    parser.add_argument("--seconds", type=float, default=15, help="how long the camera sends (default 15)")
    parser.add_argument("--rate", type=int, default=200, help="events a second (default 200)")
    parser.add_argument(
        "--failover-after-s", type=float, default=2, help="[mqtt] failover_after_s (default 2)"
    )
    parser.add_argument("--return-to-primary-s", type=float, default=3, help="[mqtt] return_to_primary_s")
    parser.add_argument(
        "--restart-primary-s", type=float, help="bring the primary back this long after the kill"
    )
    parser.add_argument("--settle-s", type=float, default=60, help="most seconds to wait for the last events")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="kuzet-failover-") as tmp:
        result = run(args, Path(tmp))
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0 if result.get("lost") == 0 and result.get("duplicates") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
