"""Face work is held to its share of a core: what it spends is paid back by waiting, measured in CPU time."""

from __future__ import annotations

import pytest

from kuzet.edge.faces.budget import CpuBudget


class Clocks:
    def __init__(self):
        self.wall = self.cpu = 0.0


@pytest.fixture
def clocks():
    return Clocks()


def budget(clocks, share=0.25, burst_s=0.5) -> CpuBudget:
    return CpuBudget(share, burst_s, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)


def test_work_beyond_the_share_waits_until_it_is_earned_back(clocks):
    faces = budget(clocks)
    assert faces.allows()
    with faces.spend():
        clocks.cpu += 1.0  # one embedding burst of a full CPU second: 0.5 of credit, 0.5 owed
    assert not faces.allows()
    clocks.wall += 1.9  # 0.25 x 1.9 = 0.475 earned back: still owing
    assert not faces.allows()
    clocks.wall += 0.2
    assert faces.allows()
    assert faces.refused == 2 and faces.spent_s == pytest.approx(1.0)


def test_over_a_long_run_faces_take_no_more_than_their_share(clocks):
    faces = budget(clocks, share=0.25)
    for _ in range(1000):  # a frame every 40 ms; a 100 ms embedding whenever allowed
        clocks.wall += 0.04
        if faces.allows():
            with faces.spend():
                clocks.cpu += 0.1
    assert faces.spent_s / clocks.wall == pytest.approx(0.25, abs=0.02)


def test_idle_time_does_not_bank_more_than_the_burst(clocks):
    faces = budget(clocks, share=0.25, burst_s=0.5)
    clocks.wall += 3600
    with faces.spend():
        clocks.cpu += 0.6
    assert not faces.allows()  # an idle hour earned 0.5 s at most
