"""Issue 17, item 1: the broker is killed with SIGKILL while a device publishes and central is subscribed, and a
FRESH broker (new persistence folder: whatever it had queued is truly gone) takes its port. Central must notice
that the broker lost its session and have the device send again what the lost broker had acknowledged: in the
end every event the device delivered is stored, none twice."""

from __future__ import annotations

import threading
import time

import pytest
from support.ingest import SITE, event, make_central, new_id, wait_for

from kuzet.central.ingest.service import IngestService
from kuzet.edge.delivery import PRIORITY_EVENT, DeliverySettings
from kuzet.edge.runtime import DeviceRuntime
from kuzet.shared import messages, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Status

DEVICE = "cam-crash"
RATE = 500  # events a second


class Producer:
    """Events at ``RATE`` a second through the device's durable outbox; remembers every message id."""

    def __init__(self, runtime: DeviceRuntime):
        self.runtime = runtime
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        topic = topics.up(SITE, DEVICE, "event")
        started, sent = time.monotonic(), 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * RATE)
            for _ in range(due - sent):
                message = event(DEVICE, new_id(), 0)
                self.runtime.publisher.enqueue(
                    topic, messages.encode(message), kind="event", priority=PRIORITY_EVENT
                )
                self.ids.append(message.id)
            sent = due
            time.sleep(0.01)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def stored_ids(central) -> list[str]:
    return [row[0] for row in central.db().execute("SELECT msg_id FROM event_updates").fetchall()]


@pytest.mark.slow
def test_a_broker_replaced_after_a_crash_loses_nothing_the_device_delivered(
    tmp_path, mosquitto_factory, port
):
    broker = mosquitto_factory(port=port)
    central = make_central(tmp_path, broker_url=broker.url, ingest={"client_id": "central-crash-test"})
    ingest = IngestService(central).start()
    runtime = DeviceRuntime(
        kind="camera",
        site=SITE,
        device=DEVICE,
        mqtt=MqttSection(url=broker.url, keepalive_s=5),
        storage=tmp_path / "device",
        spool_dir=tmp_path / "device" / "clips",
        spool_limits={},
        status=lambda: Status(device=DEVICE, kind="camera", software_version="0", uptime_s=0),
        heartbeat_s=lambda: 30.0,
        delivery=DeliverySettings(max_inflight=200, backlog_per_s=5000, max_bytes_per_s=10_000_000),
    ).start()
    producer = Producer(runtime).start()
    try:
        wait_for(lambda: len(stored_ids(central)) > RATE, 20, "central storing the device's events")
        # Central comes back later than the device (its back-off had grown): what the device delivers to the
        # new broker before central subscribes there is acknowledged and dropped, as are the messages the
        # killed broker held for central.
        ingest._link.client.reconnect_delay_set(min_delay=12, max_delay=12)
        broker.process.kill()
        broker.process.wait()
        time.sleep(3)
        fresh = mosquitto_factory(port=port)  # a new persistence folder: the old queue is gone for good
        assert fresh.workdir != broker.workdir
        wait_for(lambda: runtime.connected, 30, "the device connected to the fresh broker")
        assert not ingest.subscribed.is_set(), "central came back first: the test would prove nothing"
        wait_for(lambda: ingest.subscribed.is_set(), 30, "central subscribed at the fresh broker")
        time.sleep(2)
        producer.stop()
        state = lambda: (  # noqa: E731
            f"connected {runtime.connected}, outbox {runtime.outbox.depth()}, in flight "
            f"{runtime.publisher.inflight}, {runtime.publisher.stats}"
        )
        wait_for(
            lambda: runtime.connected and runtime.outbox.depth() == 0, 60, f"the outbox drained: {state()}"
        )
        delivered = set(producer.ids)  # an empty outbox: the broker acknowledged every one of them

        def all_stored():
            return delivered <= set(stored_ids(central))

        try:
            wait_for(all_stored, 60, "every delivered event stored")
        finally:
            stored = stored_ids(central)
            missing = delivered - set(stored)
            assert not missing, f"{len(missing)} of {len(delivered)} delivered events never stored"
        assert len(stored) == len(set(stored)), "an event message stored twice"
        assert ingest.session.lost == 1
        assert runtime.publisher.stats["redelivered"] > 0
    finally:
        producer.stop()
        runtime.stop(drain_s=0)
        ingest.stop()
        central.close()
