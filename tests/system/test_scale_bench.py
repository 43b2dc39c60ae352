"""bench/scale.py end to end, small: simulated cameras and badges with their own certificates over mutual TLS
into a primary and a standby broker as site-init configures them, central as one process, the primary
stopped mid-run. Every event message must be stored once, every clip verified, every device must move to the
standby and come back."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"

pytestmark = [pytest.mark.slow, pytest.mark.broker]  # the bench starts its own Mosquittos


def run_small(*options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The bench as one central process on SQLite with media in a folder, busy cameras, and ``options``."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--json", "--topology=single", "--media=folder"]
        + ["--events-per-camera-hour=900", *options],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.stdout, done.stderr[-3000:]
    return done, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_scale_bench_stores_every_event_through_a_broker_outage():
    done, figures = run_small(
        "--cameras=30",
        "--badges=6",
        "--minutes=0.35",
        "--broker-outage-s=5",
        "--failover-after-s=2",
        "--return-to-primary-s=3",
        "--devices-per-process=20",
    )
    assert figures["devices"] == figures["devices_configured"] == 36
    assert figures["sent"] > 50
    assert figures["lost"] == 0 and figures["duplicates"] == 0, done.stderr[-3000:]
    assert figures["clips"] > 0 and figures["clips_verified"] == figures["clips"]
    assert figures["clips_undelivered"] == 0
    assert figures["devices_moved"] == 36  # each went to the standby while the primary was down
    assert figures["broker_failover_s"] >= 2  # the primary had its failover_after_s to come back
    assert figures["dispatch_samples"][1] > 0 and figures["unacked_at_end"] == figures["undelivered"] == 0
    # Where the time went: the parts that did the work each show in the CPU measured during the load (central
    # runs in the bench's own process here), and the simulators say how late their loops ran.
    cpu = figures["cpu_cores_during_load"]
    assert {"devices", "brokers", "bench"} <= {part for part, cores in cpu["by_part"].items() if cores > 0}, (
        cpu
    )
    assert 0 < cpu["machine_busy_cores"] <= cpu["machine_cores"]
    assert figures["simulator_lag_ms"]["p50"] is not None
    assert [ms for ms in figures["p50_store_ms_by_10s"] if ms is not None]
    assert figures["simulators_halted"] == 0 and figures["broker_keepalive_timeouts"]["primary"] == 0
    assert done.returncode == 0


def test_device_processes_still_running_past_their_time_are_halted_and_their_figures_kept():
    # A machine too slow to run the devices gave no figures at all (the bench exited waiting for them): now
    # the processes are told to stop and report what they have, and the accounting holds for it.
    done, figures = run_small(
        "--cameras=20",
        "--badges=4",
        "--minutes=1",
        "--broker-outage-s=0",
        "--devices-per-process=12",
        "--halt-after-s=12",
    )
    assert figures["simulators_halted"] == 2, figures  # both processes, 12 s into a minute's load
    assert 0 < figures["sent"] < 300  # a whole minute sends about 600 event messages (opened, closed)
    assert figures["lost"] == 0 and figures["duplicates"] == 0, done.stderr[-3000:]
    assert figures["stored"] + figures["undelivered"] == figures["sent"]
    # A clip is verified unless a chunk of it was still on its camera when the processes were halted.
    assert figures["clips_verified"] == figures["clips"] - figures["clips_undelivered"] > 0
    assert done.returncode == 0


def test_a_histograms_quantiles_are_the_bounds_of_the_buckets_they_fall_in():
    # Loaded from its file: the repository root must not go on sys.path (tests/test_architecture.py).
    spec = importlib.util.spec_from_file_location("scale_probe", BENCH.parent / "scale_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    histogram_quantiles = probe.histogram_quantiles

    text = "\n".join(
        [
            "# HELP kuzet_ingest_delay_seconds From arrival at central to commit",
            'kuzet_ingest_delay_seconds_bucket{le="0.1"} 40.0',
            'kuzet_ingest_delay_seconds_bucket{le="0.5"} 90.0',
            'kuzet_ingest_delay_seconds_bucket{le="1.0"} 99.0',
            'kuzet_ingest_delay_seconds_bucket{le="+Inf"} 100.0',
            "kuzet_ingest_delay_seconds_count 100.0",
        ]
    )
    assert histogram_quantiles(text, "kuzet_ingest_delay_seconds") == {"count": 100.0, "p50": 0.5, "p99": 1.0}
    assert histogram_quantiles(text, "kuzet_ingest_delay_seconds", (0.995,))["p100"] is None  # past 1.0 s
    assert histogram_quantiles("", "kuzet_ingest_delay_seconds") == {"count": 0.0, "p50": None, "p99": None}


@pytest.fixture
def scale_devices(monkeypatch):
    """bench/scale_devices.py, imported as the bench's processes import it."""
    spec = importlib.util.spec_from_file_location("scale_devices", BENCH.parent / "scale_devices.py")
    devices = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "scale_devices", devices)  # its dataclasses look their module up
    spec.loader.exec_module(devices)
    return devices


class FakeClient:
    """paho's publishing side, recorded."""

    def __init__(self):
        self.published = []

    def publish(self, topic, payload, qos=0, retain=False):
        self.published.append((topic, payload))
        return type("Info", (), {"rc": 0, "mid": len(self.published)})()

    def subscribe(self, topic, qos=0):
        pass

    def socket(self):
        return type("Socket", (), {"setsockopt": lambda *args: None})()


def bare_device(devices, name: str, brokers: list[str] = ()):
    """A simulated device with no broker, certificate or loop: its sending rules only."""

    class Sim:
        plan = devices.Plan(site="s1", brokers=list(brokers), ca="", cert_dir="", devices=[], seconds=1)
        report = devices.Report()
        handshakes = 0
        started = []

        class loop:  # noqa: N801 - stands in for the asyncio loop: a handshake started and left pending
            @staticmethod
            def create_task(coro):
                coro.close()
                Sim.started.append(coro)
                return type("Task", (), {"done": lambda self: False})()

        def write_now(self, client):
            pass

    device = devices.Device.__new__(devices.Device)
    device.sim, device.name, device.kind, device.outbox, device.inflight = Sim(), name, "camera", {}, {}
    device.client, device.connected, device.handshake, device.lost_at = None, False, None, None
    device.subscribed_at, device.received = None, 0
    device.delivered, device.moved_after_loss_at, device.resends_handled = (
        devices.collections.deque(),
        None,
        set(),
    )
    return device


def test_a_simulated_device_queues_what_the_agents_queue_and_sends_the_rest_only_while_connected(
    scale_devices,
):
    """As edge/runtime/device.py: heartbeats and positions go straight to the broker while connected and are
    never kept (a device that moved brokers does not send them again); events wait in the outbox."""
    from kuzet.shared import ids, messages, timeutil, topics

    device = bare_device(scale_devices, "cam-1")
    Sim = type(device.sim)
    beat = messages.Status(device="cam-1", kind="camera", software_version="t", uptime_s=1.0)
    event = messages.Event(
        device="cam-1", event_id=ids.new_id(), seq=0, state="open", event_type="zone_enter", severity="low",
        label="person", score=0.9, started_at=timeutil.utc_now(),
    )  # fmt: skip
    device.send_now(beat)
    device.send(event)
    assert list(device.outbox) == [event.id]  # offline: the event waits, the heartbeat is gone
    device.client, device.connected = FakeClient(), True
    device.send_now(beat)
    assert [topic for topic, _ in device.client.published] == [topics.up("s1", "cam-1", "status")]
    assert list(device.outbox) == [event.id] and Sim.report.counts == {"status": 1, "event": 1}


def _delivered(device, *ages_s: float) -> list[str]:
    """Events the broker acknowledged ``ages_s`` ago, in that order (oldest first), as the device records them."""
    from kuzet.shared import ids, topics

    now, delivered = time.time(), []
    for age in ages_s:
        msg_id = ids.new_id()
        device.delivered.append((now - age, msg_id, topics.up("s1", device.name, "event"), msg_id.encode()))
        delivered.append(msg_id)
    return delivered


def test_a_simulated_device_sends_again_what_central_asks_for_once_per_request(scale_devices):
    """As the agents do (edge/delivery/outbox.py ``redeliver``): central's ``resend`` (a broker restarted and may
    have lost what it took before central had it) queues again what was delivered since the time it names, once
    per request (it is retained and comes back on every connection); without it a restarted broker's losses
    counted as central's (docs/scale.md)."""
    from kuzet.shared import messages, topics

    device = bare_device(scale_devices, "cam-1")
    device.client, device.connected = FakeClient(), True
    old, recent, newest = _delivered(device, 120, 40, 5)
    request = messages.Resend(
        device="cam-1", since=datetime.now(UTC) - timedelta(seconds=60), reason="the broker at x restarted"
    )
    arrived = type(
        "Msg", (), {"topic": topics.down("s1", "cam-1", "resend"), "payload": messages.encode(request)}
    )
    device._on_message(None, None, arrived)
    device._on_message(None, None, arrived)  # the retained request again, on the next connection
    assert list(device.outbox) == [recent, newest]
    assert [payload for _, payload in device.client.published] == [recent.encode(), newest.encode()]
    assert [entry[1] for entry in device.delivered] == [old]


def test_a_simulated_device_that_moved_keeps_the_move_through_a_failed_handshake(scale_devices):
    """As the agents' link (shared/mqtt.py ``_failed_over_from``): a device that lost the primary and moved to
    the standby sends again what the primary took shortly before it went once it is connected to the standby,
    even when its first handshake there failed (the next attempt is at the same broker, so no longer a move)."""
    device = bare_device(scale_devices, "cam-1", ["mqtts://primary:8883", "mqtts://standby:8883"])
    clock = [0.0]
    device.choice = scale_devices.BrokerChoice(device.sim.plan.brokers, 10.0, 60.0, clock=lambda: clock[0])
    lost_at = time.time() - 11
    device.lost_at = lost_at
    before, shortly_before = _delivered(device, 600, 30)
    device.choice.lost()
    clock[0] = 11.0
    device.connect()  # the primary had its 10 s: the standby
    assert device.choice.index == 1 and device.moved_after_loss_at == lost_at
    device.handshake = (
        None  # that handshake failed (the standby busy); the next attempt is at the standby again
    )
    device.choice.lost()
    clock[0] = 12.0
    device.connect()
    assert device.choice.index == 1 and device.moved_after_loss_at == lost_at
    device.client = FakeClient()  # the next handshake succeeded
    device._on_connect(device.client, None, None, type("Code", (), {"is_failure": False})(), None)
    assert list(device.outbox) == [shortly_before] and device.moved_after_loss_at is None
    assert [entry[1] for entry in device.delivered] == [before]
