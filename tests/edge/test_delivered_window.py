"""What the outbox keeps after the broker acknowledged it, for central's ``resend`` (issue 17, item 1): a bounded
window of delivered rows, queued again once per request, the oldest dropped first (and counted) past the cap."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from kuzet.edge.delivery import Outbox
from kuzet.edge.delivery.outbox import DELIVERED_DROPPED
from kuzet.edge.runtime import DeviceRuntime
from kuzet.shared import messages, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Resend, Status


def queued(outbox: Outbox, *payloads: bytes) -> list[int]:
    with outbox.transaction() as tx:
        return [tx.put("kuzet/v1/s/d/up/event", p, kind="event", priority=100) for p in payloads]


def payloads(outbox: Outbox) -> list[bytes]:
    return [row.payload for row in outbox.next_rows(100)]


def test_acknowledged_rows_leave_the_queue_but_are_kept(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    rows = queued(outbox, b"a", b"b", b"c")
    outbox.mark_delivered(rows[:2])
    assert payloads(outbox) == [b"c"]
    assert outbox.depth() == 1 and outbox.delivered_depth() == 2


def test_a_resend_request_queues_again_what_was_delivered_since_once(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    early, late, later = queued(outbox, b"early", b"late", b"later")
    outbox.mark_delivered([early], at=1000.0)
    outbox.mark_delivered([late, later], at=2000.0)
    assert outbox.redeliver("request-1", since=1500.0) == 2
    assert payloads(outbox) == [b"late", b"later"]
    assert outbox.redeliver("request-1", since=0.0) is None  # a retained request that came back
    assert outbox.depth() == 2 and outbox.delivered_depth() == 1
    rows = [row.id for row in outbox.next_rows(10)]
    assert min(rows) > later  # at the end of the queue
    outbox.mark_delivered(rows, at=3000.0)
    assert outbox.redeliver("request-2", since=0.0) == 3  # delivered again: kept again


def test_the_window_ends_and_the_size_cap_drops_the_oldest_counted(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    now = time.time()
    old = queued(outbox, b"x" * 10)
    outbox.mark_delivered(old, at=now - 2 * 86400)
    rows = queued(outbox, *(bytes([65 + i]) * 100 for i in range(5)))
    for offset, row in enumerate(rows):
        outbox.mark_delivered([row], at=now - 10 + offset)
    assert outbox.prune_delivered(keep_s=86400, keep_bytes=250, now=now) == 3
    assert outbox.counter(DELIVERED_DROPPED) == 3  # the expired one is not counted: its window ended
    assert outbox.redeliver("r", since=0.0) == 2
    assert payloads(outbox) == [b"D" * 100, b"E" * 100]


def test_the_device_queues_again_on_centrals_resend(tmp_path):
    runtime = DeviceRuntime(
        kind="camera",
        site="pavlodar",
        device="cam-1",
        mqtt=MqttSection(url="mqtt://127.0.0.1:1"),
        storage=tmp_path / "state",
        spool_dir=tmp_path / "state" / "clips",
        spool_limits={},
        status=lambda: Status(device="cam-1", kind="camera", software_version="0", uptime_s=0),
        heartbeat_s=lambda: 5.0,
    )
    try:
        rows = queued(runtime.outbox, b"one", b"two")
        runtime.outbox.mark_delivered(rows)
        request = Resend(device="cam-1", since=datetime.fromtimestamp(time.time() - 60, UTC), reason="test")
        topic = topics.down("pavlodar", "cam-1", "resend")
        runtime._on_down(topic, messages.encode(request))
        runtime._on_down(topic, messages.encode(request))  # retained: it comes again on every reconnect
        runtime.publisher._housekeeping()
        assert payloads(runtime.outbox) == [b"one", b"two"]
        assert runtime.publisher.stats["redelivered"] == 2
    finally:
        runtime.stop(drain_s=0)
