"""The shared MQTT link against a real Mosquitto: delivery, last will, and surviving a broker restart."""

import threading
import time

from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link, parse_url


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_publish_subscribe_and_last_will(mosquitto):
    settings = MqttSection(url=mosquitto.url)
    received = []
    lock = threading.Lock()

    def on_message(topic, payload):
        with lock:
            received.append((topic, payload))

    watcher = Link(settings, "watcher").start()
    watcher.subscribe("kuzet/v1/+/+/up/#", on_message)
    assert wait_until(lambda: watcher.connected.is_set())
    device = Link(settings, "cam-1", will=("kuzet/v1/s/cam-1/up/availability", b"offline")).start()
    for i in range(50):
        device.publish("kuzet/v1/s/cam-1/up/event", b"%d" % i)
    assert wait_until(lambda: len(received) == 50)
    # A device that vanishes without a clean disconnect: the broker publishes its will.
    device.client._sock.close()
    device.client.loop_stop()
    assert wait_until(lambda: ("kuzet/v1/s/cam-1/up/availability", b"offline") in received, timeout=15)
    watcher.stop()


def test_link_reconnects_after_broker_restart(mosquitto):
    settings = MqttSection(url=mosquitto.url)
    link = Link(settings, "cam-2").start()
    assert link.connected.is_set()
    mosquitto.stop()
    assert wait_until(lambda: not link.connected.is_set())
    mosquitto.start()
    assert wait_until(lambda: link.connected.is_set(), timeout=40)
    link.stop()


def test_broker_urls():
    assert parse_url("mqtt://example:1884").port == 1884
    assert parse_url("mqtts://example").tls and parse_url("mqtts://example").port == 8883


def test_a_stopped_link_leaves_no_file_descriptors_open(mosquitto):
    # Central and the agents start and stop links (reloads, tests); a leak of a few descriptors each ends in
    # "filedescriptor out of range in select()" once a process passes 1,024.
    import gc
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.disable()  # what paho leaves would otherwise be closed by a collection at random
    try:
        before = open_fds()
        for n in range(10):
            Link(MqttSection(url=mosquitto.url), f"fd-check-{n}").start().stop()
        assert open_fds() == before
    finally:
        gc.enable()
