"""Which heartbeats ingest shows live (central/ingest/announce.py): a change of what the page says at once, the
first heartbeat of each 30 s of the device's clock otherwise; decided against the heartbeat stored before, so
that ingest workers sharing a device's heartbeats agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kuzet.central.ingest.announce import to_show
from kuzet.shared import messages, timeutil

T0 = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)  # a window's start (a multiple of 30 s)


def beat(second: float, device: str = "cam-1", **fields) -> messages.Status:
    values = {"device": device, "kind": "camera", "software_version": "1.4.2", "uptime_s": 60.0, **fields}
    return messages.Status(ts=T0 + timedelta(seconds=second), **values)


def stored(*beats: messages.Status) -> dict[str, tuple[str, str]]:
    """The store as it holds each device's last heartbeat."""
    return {b.device: (messages.encode(b).decode(), timeutil.to_wire(b.ts)) for b in beats}


def test_a_quiet_device_is_shown_every_30_s_and_a_change_at_once():
    assert to_show([beat(0), beat(0, "cam-2")], {}) == {"cam-1", "cam-2"}  # never heard before
    assert to_show([beat(10, cpu_temp_c=55.0)], stored(beat(0))) == set()  # nothing the page says changed
    assert to_show([beat(30)], stored(beat(20))) == {"cam-1"}  # a new 30 s: its "last seen"
    assert to_show([beat(35, cpu_temp_c=86.0)], stored(beat(30))) == {"cam-1"}  # too hot: at once
    assert to_show([beat(40, cpu_temp_c=86.0)], stored(beat(35, cpu_temp_c=86.0))) == set()
    assert to_show([beat(45, cpu_temp_c=91.0)], stored(beat(40, cpu_temp_c=86.0))) == {"cam-1"}  # 91 °C now
    assert to_show([beat(50, cpu_temp_c=50.0)], stored(beat(45, cpu_temp_c=91.0))) == {"cam-1"}  # cooled
    assert to_show([beat(55, software_version="1.5.0")], stored(beat(50))) == {"cam-1"}  # updated
    assert to_show([beat(5)], stored(beat(50))) == set()  # late: the store keeps the newer one


def test_heartbeats_of_one_batch_are_compared_with_each_other_in_arrival_order():
    # The first cools the device (shown), the second says the same within the window (not shown again).
    assert to_show([beat(35), beat(45)], stored(beat(25, cpu_temp_c=90.0))) == {"cam-1"}
    # A worker that took none of a device's heartbeats before still knows what the page says: the store does.
    assert to_show([beat(50, cpu_temp_c=90.0)], stored(beat(40, cpu_temp_c=90.0))) == set()
