"""Central's ingest on a primary and a standby broker at once (central/ingest/brokers.py): it stores what comes
from either, sends to a device through the broker it last heard the device on, is not misled by the
retained availability a device left behind on a broker it has moved away from, and sends a device that comes
back on the standby the command it never got from the primary."""

from __future__ import annotations

import queue
import time

import pytest
from support.ingest import SITE, event, make_central, new_id, up, wait_for

from kuzet.central import commands
from kuzet.central.ingest.service import IngestService
from kuzet.central.store import registry
from kuzet.shared import messages, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Availability, Command, Status
from kuzet.shared.mqtt import Link

DEVICE = "badge-7"


def listener(url: str) -> tuple[Link, queue.Queue]:
    """Whatever central sends any device, as heard on one broker: (device, kind)."""
    heard: queue.Queue = queue.Queue()
    link = Link(MqttSection(url=url), f"listener-{new_id().lower()}")
    link.subscribe(
        f"kuzet/v1/{SITE}/+/down/#", lambda topic, payload: heard.put(tuple(topic.split("/")[3::2]))
    )
    return link.start(), heard


def stored(central, event_id: str) -> int:
    return central.db()["events"].count_where("event_id = ?", [event_id])


def test_stored_from_both_and_sent_through_the_broker_last_heard_on(tmp_path, brokers):
    primary, standby = brokers
    central = make_central(tmp_path, [primary.url, standby.url])
    ingest = IngestService(central).start()
    on_primary, heard_on_primary = listener(primary.url)
    on_standby, heard_on_standby = listener(standby.url)
    devices = [Link(MqttSection(url=b.url), f"{DEVICE}-{n}").start() for n, b in enumerate(brokers)]
    try:
        for link in devices:  # on the primary, then (once stored) on the standby: heard last there
            message = event(DEVICE, new_id(), 0)
            link.publish(up(DEVICE, "event"), messages.encode(message)).wait_for_publish(5)
            wait_for(
                lambda m=message: stored(central, m.event_id), 10, f"the event sent to {link.url} stored"
            )

        # Last heard on the standby: a command goes there only.
        central.publish(topics.down(SITE, DEVICE, "command"), b"{}")
        assert heard_on_standby.get(timeout=5) == (DEVICE, "command")
        with pytest.raises(queue.Empty):
            heard_on_primary.get(timeout=1)

        # Never heard: through every broker.
        central.publish(topics.down(SITE, "badge-unknown", "command"), b"{}")
        assert (
            heard_on_primary.get(timeout=5) == heard_on_standby.get(timeout=5) == ("badge-unknown", "command")
        )
        health = ingest.health()
        assert health["problems"] == [] and [b["connected"] for b in health["mqtt"]["brokers"]] == [
            True,
            True,
        ]
    finally:
        for link in (*devices, on_primary, on_standby):
            link.stop()
        ingest.stop()
        central.close()


def test_a_retained_availability_left_on_a_broker_the_device_moved_from_is_ignored(tmp_path, brokers):
    primary, standby = brokers
    # The device was on the standby and went back to the primary cleanly: its retained "online" stays there.
    left_behind = Link(MqttSection(url=standby.url), f"{DEVICE}-old").start()
    availability = messages.encode(Availability(device=DEVICE, state="online"))
    left_behind.publish(up(DEVICE, "availability"), availability, retain=True).wait_for_publish(5)
    left_behind.stop()

    central = make_central(tmp_path, [primary.url, standby.url])
    ingest = IngestService(central).start()
    device = Link(MqttSection(url=primary.url), DEVICE).start()
    on_primary, heard_on_primary = listener(primary.url)
    on_standby, heard_on_standby = listener(standby.url)
    try:
        status = Status(device=DEVICE, kind="badge", software_version="1", uptime_s=5)
        device.publish(up(DEVICE, "status"), messages.encode(status)).wait_for_publish(5)
        wait_for(lambda: ingest._links._last_heard.get(DEVICE) == 0, 10, "the device heard on the primary")

        # Central's link to the standby reconnects and subscribes again: the broker sends the retained message
        # again, which must not make central think the device is on the standby.
        standby.stop()
        standby.start()
        wait_for(lambda: ingest.subscribed.is_set(), 20, "central subscribed on the standby again")
        wait_for(lambda: ingest._links.stale_retained >= 1, 10, "the stale retained availability dropped")
        central.publish(topics.down(SITE, DEVICE, "command"), b"{}")
        # (The standby was restarted: central also asks its devices, on every broker, to send again what it may
        # not have saved; those requests are not what this is about.)
        assert _next_but_resend(heard_on_primary, 5) == (DEVICE, "command")
        with pytest.raises(queue.Empty):
            _next_but_resend(heard_on_standby, 1)
    finally:
        for link in (device, on_primary, on_standby):
            link.stop()
        ingest.stop()
        central.close()


def test_a_device_back_on_the_standby_gets_the_command_it_never_got_from_the_primary(tmp_path, brokers):
    primary, standby = brokers
    central = make_central(tmp_path, [primary.url, standby.url])
    registration = registry.Registration(device_id=DEVICE, kind="badge", name="B7", site=SITE)
    registry.register(central.db(), registration, actor="test")
    ingest = IngestService(central)
    commands.listen(central, ingest)
    ingest.start()
    got: queue.Queue = queue.Queue()

    def device_on(url: str) -> Link:
        """The device connecting to ``url``: it takes its commands, then says it is online."""
        link = Link(MqttSection(url=url), DEVICE, persistent_session=True)
        link.subscribe(topics.down(SITE, DEVICE, "command"), lambda t, p: got.put(messages.decode(t, p)))
        link.start()
        online = messages.encode(Availability(device=DEVICE, state="online"))
        link.publish(up(DEVICE, "availability"), online, retain=True).wait_for_publish(5)
        return link

    links = [device_on(primary.url)]
    try:
        wait_for(lambda: ingest._links._last_heard.get(DEVICE) == 0, 10, "the device heard on the primary")
        links[0].stop()  # out of coverage; central, not knowing, sends through the primary
        sent = commands.send(central, DEVICE, "live_stop", {}, "anna")
        primary.stop()  # and the primary goes down with the device's session

        links.append(device_on(standby.url))
        command = got.get(timeout=10)
        assert isinstance(command, Command) and command.command_id == sent["command_id"]
        answer = messages.encode(command.answer(DEVICE, True, "stopped"))
        links[-1].publish(up(DEVICE, "command_result"), answer).wait_for_publish(5)
        wait_for(lambda: commands.get(central.db(), sent["command_id"])["state"] == "ok", 10, "the answer")

        # Answered, it is not sent again the next time the device comes online. (Copies that crossed the answer,
        # as when central sent it on both brokers while its link to the primary was going down, the device's
        # command ids drop: edge/runtime/accepted.py.)
        links[-1].stop()
        while True:
            try:
                assert got.get(timeout=1).command_id == command.command_id
            except queue.Empty:
                break
        links.append(device_on(standby.url))
        with pytest.raises(queue.Empty):
            got.get(timeout=2)
    finally:
        for link in links:
            link.stop()
        ingest.stop()
        central.close()


def _next_but_resend(heard: queue.Queue, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        got = heard.get(timeout=max(0.0, deadline - time.monotonic()))
        if got[1] != "resend":
            return got
