"""Issue 17: nothing a device was told is stored is ever lost. Each fault is done for real: ``kuzet central
run`` killed with SIGKILL, its data folder or media folder on a small file system that fills up, the database
locked by another connection."""

from __future__ import annotations

import time

import pytest
from support.ingest import wait_for
from support.ingest_faults import CentralProcess, SteadyCamera

pytestmark = pytest.mark.slow


def test_sigkill_of_central_loses_no_acknowledged_event(tmp_path, mosquitto):
    # A wide batch window keeps many received messages uncommitted at any moment: the moment of the kill.
    central = CentralProcess(tmp_path, mosquitto.url, ingest={"batch_window_ms": 300}).start()
    camera = SteadyCamera(mosquitto.url, rate=200).start()
    try:
        time.sleep(2.5)
        central.kill()
        time.sleep(1)
        central.start()
        time.sleep(1)
        camera.stop()
        acknowledged = set(camera.acknowledged)
        assert len(acknowledged) > 500
        try:
            wait_for(
                lambda: acknowledged <= central.event_ids(), timeout_s=30, what="every acknowledged event"
            )
        except AssertionError:
            missing = acknowledged - central.event_ids()
            raise AssertionError(f"{len(missing)} of {len(acknowledged)} acknowledged events lost") from None
    finally:
        central.stop()
