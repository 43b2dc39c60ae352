"""Which heartbeats ingest shows live (central/ingest/announce.py): a change a person reads at once, the rest
at most every 30 s per device; every other change of a device always."""

from __future__ import annotations

from kuzet.central.ingest.announce import HeartbeatFilter
from kuzet.shared import messages


def beat(device: str = "cam-1", **fields) -> messages.Status:
    return messages.Status(
        **{"device": device, "kind": "camera", "software_version": "1.4.2", "uptime_s": 60.0, **fields}
    )


def test_a_quiet_device_is_shown_every_30_s_and_a_new_problem_at_once():
    shown = HeartbeatFilter(every_s=30.0)
    assert shown.to_show({"cam-1": beat(), "cam-2": beat("cam-2")}, now=0.0) == {"cam-1", "cam-2"}
    assert shown.to_show({"cam-1": beat(cpu_temp_c=55.0)}, now=10.0) == set()  # nothing the page says changed
    assert shown.to_show({"cam-1": beat()}, now=30.0) == {"cam-1"}  # its "last seen", every 30 s
    assert shown.to_show({"cam-1": beat(cpu_temp_c=86.0)}, now=35.0) == {"cam-1"}  # too hot: at once
    assert shown.to_show({"cam-1": beat(cpu_temp_c=86.0)}, now=40.0) == set()
    assert shown.to_show({"cam-1": beat(cpu_temp_c=91.0)}, now=45.0) == {"cam-1"}  # the page says 91 °C now
    assert shown.to_show({"cam-1": beat(cpu_temp_c=50.0)}, now=50.0) == {"cam-1"}  # and the problem gone
    assert shown.to_show({"cam-1": beat(software_version="1.5.0")}, now=55.0) == {"cam-1"}  # updated
    shown.forget({"cam-1"})  # it went offline and came back: its next heartbeat is news
    assert shown.to_show({"cam-1": beat(software_version="1.5.0")}, now=56.0) == {"cam-1"}
