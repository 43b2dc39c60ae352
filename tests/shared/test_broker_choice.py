"""The failover rules (shared/failover.py) on a fake clock, and the [mqtt] brokers list as a technician writes it."""

from __future__ import annotations

import collections
import random

import pytest

from kuzet.shared.config import ConfigError, MqttSection, Section, parse
from kuzet.shared.failover import BrokerChoice, reconnect_delays
from kuzet.shared.mqtt import Link

PRIMARY, STANDBY = "mqtts://a:8883", "mqtts://b:8883"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lost_broker_is_retried_until_failover_after_s_then_the_next_and_round_again():
    clock = Clock()
    choice = BrokerChoice([PRIMARY, STANDBY], failover_after_s=10, return_to_primary_s=0, clock=clock)
    assert choice.connecting() == PRIMARY
    choice.connected()
    choice.lost()
    clock.now += 9
    assert choice.connecting() == PRIMARY  # a restart of the primary is waited for
    clock.now += 1
    assert choice.connecting() == STANDBY and choice.moves == 1
    clock.now += 9
    assert choice.connecting() == STANDBY  # the standby gets its own failover_after_s
    clock.now += 1
    assert choice.connecting() == PRIMARY  # after the last comes the first
    assert choice.moves == 2


def test_a_broker_never_reached_at_start_is_left_after_failover_after_s():
    clock = Clock()
    choice = BrokerChoice([PRIMARY, STANDBY], failover_after_s=3, return_to_primary_s=0, clock=clock)
    assert choice.connecting() == PRIMARY
    clock.now += 3
    assert choice.connecting() == STANDBY


def test_one_broker_is_never_left():
    clock = Clock()
    choice = BrokerChoice([PRIMARY], failover_after_s=1, return_to_primary_s=5, clock=clock)
    choice.connecting()
    clock.now += 100
    assert choice.connecting() == PRIMARY and choice.moves == 0
    choice.connected()
    clock.now += 100
    assert not choice.primary_check_due()


class Draws:
    """A random source that gives the listed values in turn."""

    def __init__(self, *values: float):
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_on_a_standby_the_primary_is_checked_every_return_to_primary_s_to_twice_that():
    clock = Clock()
    choice = BrokerChoice(
        [PRIMARY, STANDBY], failover_after_s=1, return_to_primary_s=30, clock=clock, rng=Draws(0.0, 0.5, 1.0)
    )
    choice.connecting()
    clock.now += 1
    assert choice.connecting() == STANDBY
    choice.connected()
    clock.now += 29
    assert not choice.primary_check_due()
    clock.now += 1
    assert choice.primary_check_due()  # the first wait drawn at its shortest: 30 s
    assert not choice.primary_check_due()
    clock.now += 44
    assert not choice.primary_check_due()  # the next drawn anew: 45 s
    clock.now += 1
    assert choice.primary_check_due()
    choice.back_to_primary()
    assert choice.connecting() == PRIMARY and not choice.on_standby
    choice.connected()
    clock.now += 1000
    assert not choice.primary_check_due()  # on the primary: nothing to check


def test_devices_that_moved_to_the_standby_together_return_to_the_primary_over_a_whole_period():
    """500 devices connected to the standby within the same second: none checks the primary before
    return_to_primary_s, and their checks spread over the next period instead of coming in step."""
    clock, rng = Clock(), random.Random(7)
    choices = [
        BrokerChoice([PRIMARY, STANDBY], failover_after_s=1, return_to_primary_s=60, clock=clock, rng=rng)
        for _ in range(500)
    ]
    for choice in choices:
        choice.connecting()
    clock.now += 1
    for choice in choices:
        choice.connecting()
        choice.connected()
    started, first_check = clock.now, {}
    while len(first_check) < len(choices):
        clock.now += 1
        for n, choice in enumerate(choices):
            if n not in first_check and choice.primary_check_due():
                first_check[n] = clock.now - started
    checks = sorted(first_check.values())
    assert checks[0] >= 60 and checks[-1] <= 121
    assert checks[-1] - checks[0] > 55  # spread over about a whole period
    per_second = collections.Counter(int(t) for t in checks)
    assert max(per_second.values()) < 25  # about 8 a second, never the 500 at once


def test_return_to_primary_zero_stays_on_the_standby():
    clock = Clock()
    choice = BrokerChoice([PRIMARY, STANDBY], failover_after_s=1, return_to_primary_s=0, clock=clock)
    choice.connecting()
    clock.now += 1
    choice.connecting()
    choice.connected()
    clock.now += 10_000
    assert not choice.primary_check_due() and choice.url == STANDBY


class Device(Section):
    mqtt: MqttSection = MqttSection()


def test_the_single_url_is_a_list_of_one_and_brokers_keeps_its_order():
    assert parse({"mqtt": {"url": PRIMARY, "tls": {"ca": "ca.crt"}}}, Device).mqtt.brokers == [PRIMARY]
    both = parse({"mqtt": {"brokers": [PRIMARY, STANDBY], "tls": {"ca": "ca.crt"}}}, Device).mqtt
    assert both.brokers == [PRIMARY, STANDBY] and both.url == PRIMARY
    assert MqttSection().brokers == ["mqtt://127.0.0.1:1883"]


@pytest.mark.parametrize(
    ("mqtt", "says"),
    [
        ({"brokers": [PRIMARY, "mqtt://b:1883"]}, "mqtt.brokers: mix of TLS (mqtts://) and plain"),
        ({"brokers": [PRIMARY, "http://b"]}, "mqtt.brokers.1: broker URL 'http://b': scheme must be"),
        ({"brokers": [PRIMARY, PRIMARY]}, "mqtt.brokers: the same broker is listed twice"),
        ({"brokers": []}, "mqtt.brokers: List should have at least 1 item"),
        ({"url": "mqtt://a", "brokers": ["mqtt://b"]}, "mqtt.url: give either 'brokers' (a list) or 'url'"),
        ({"url": "mqtt://a:port"}, "mqtt.url: broker URL 'mqtt://a:port' has a bad port"),
    ],
)
def test_a_bad_broker_list_is_refused_naming_the_key(mqtt, says):
    with pytest.raises(ConfigError) as refused:
        parse({"mqtt": mqtt}, Device, "camera.toml")
    assert says in str(refused.value)


def test_each_link_draws_its_own_backoff_so_devices_cut_off_together_do_not_retry_in_step():
    rng = random.Random(7)
    drawn = [reconnect_delays(10, several=True, rng=rng) for _ in range(500)]
    assert all(1 <= first < 2 and 3.75 <= longest <= 5 for first, longest in drawn)  # a standby tried in time
    firsts, longests = sorted(f for f, _ in drawn), sorted(c for _, c in drawn)
    # The first retries of 500 devices spread over a whole second, the later ones over more than one.
    assert firsts[-1] - firsts[0] > 0.95 and longests[-1] - longests[0] > 1.1
    assert min(firsts[n + 49] - firsts[n] for n in range(len(firsts) - 49)) > 0.04  # no 50 within 40 ms
    alone = [reconnect_delays(10, several=False, rng=rng) for _ in range(100)]
    assert all(22.5 <= longest <= 30 for _, longest in alone)
    assert all(first <= longest for first, longest in (reconnect_delays(1, True, rng) for _ in range(100)))
    # And a link uses its own draw (paho keeps it on the client).
    plain = MqttSection(brokers=["mqtt://a:1883", "mqtt://b:1883"])
    links = [Link(plain, f"cam-{n}") for n in range(3)]
    assert len({link.client._reconnect_min_delay for link in links}) == 3
