"""Exactly one leader among central processes, elected through PostgreSQL: a standby waits while the leader
lives and takes over after the leader process is killed with SIGKILL (no clean step-down). Prints the
failover time it saw (no assert on it: performance goes to bench/)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from kuzet.central.store.leadership import Leadership

LEADER = textwrap.dedent(
    """
    import sys, time
    from kuzet.central.store.leadership import Leadership
    leadership = Leadership(sys.argv[1], "routing", "pavlodar", poll_s=0.2).start()
    leadership.leading.wait(30)
    print("leading" if leadership.leading.is_set() else "not leading", flush=True)
    time.sleep(600)
    """
)


def test_a_standby_takes_over_when_the_leader_is_killed(postgres_url):
    leader = subprocess.Popen([sys.executable, "-c", LEADER, postgres_url], stdout=subprocess.PIPE, text=True)
    assert leader.stdout.readline().strip() == "leading"
    standby = Leadership(postgres_url, "routing", "pavlodar", poll_s=0.2).start()
    other_site = Leadership(postgres_url, "routing", "kostanay", poll_s=0.2).start()
    try:
        assert other_site.leading.wait(30)  # another site's routing has a leader of its own
        assert not standby.leading.wait(1.5)  # while the leader lives, the standby waits

        os.kill(leader.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        leader.wait(timeout=10)
        assert standby.leading.wait(60), "the standby never took over"
        print(f"leader failover: {standby.elected_at - killed_at:.2f} s")
    finally:
        if leader.poll() is None:
            leader.kill()
        standby.stop()
        other_site.stop()
    assert not standby.leading.is_set()  # stopping steps down
