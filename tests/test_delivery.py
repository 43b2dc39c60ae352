"""Store-and-forward through a real Mosquitto: the outbox survives restarts and broker outages, a backlog
does not hold back live messages, clips arrive verified even when chunks are lost, and the quota drops clips,
never events."""

from __future__ import annotations

import os
import threading
import time

import pytest

from central.ingest.clips import ClipAssembler
from central.store.media import MediaStore
from central.store.schema import open_database
from edge.delivery import (
    PRIORITY_CLIP,
    PRIORITY_EVENT,
    ClipSpool,
    DeliverySettings,
    Outbox,
    Publisher,
)
from shared import ids, messages, topics
from shared.config import MqttSection
from shared.mqtt import Link

SITE, DEVICE = "pavlodar", "cam-7"
EVENT_TOPIC = topics.up(SITE, DEVICE, "event")


class Collector:
    """Central's stand-in: a subscriber that records every up message in arrival order."""

    def __init__(self, url: str, handler=None):
        self.messages: list[tuple[str, bytes]] = []
        self.arrived = threading.Condition()
        self.handler = handler
        self.link = Link(MqttSection(url=url), f"collector-{ids.new_id().lower()}", persistent_session=True)
        self.link.subscribe(topics.all_up(), self._on_message)
        self.link.start()

    def _on_message(self, topic, payload):
        with self.arrived:
            self.messages.append((topic, payload))
            self.arrived.notify_all()
        if self.handler:
            self.handler(topic, payload)

    def wait_for(self, predicate, timeout=20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True

    def payloads(self, kind="event") -> list[bytes]:
        return [p for t, p in self.messages if t.endswith("/" + kind)]

    def stop(self):
        self.link.stop()


def wait_until(predicate, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def device_link(mosquitto):
    link = Link(MqttSection(url=mosquitto.url), DEVICE).start()
    yield link
    link.stop()


def test_outbox_is_durable_and_counts_with_the_message(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    first = outbox.put("t/a", b"one", kind="event", priority=PRIORITY_EVENT, count="events_created")
    outbox.put("t/b", None, kind="clip", priority=PRIORITY_CLIP, ref="clip:0")
    outbox.put("t/c", b"three", kind="event", priority=PRIORITY_EVENT)
    outbox.close()

    again = Outbox(tmp_path / "outbox.db")
    assert again.counter("events_created") == 1
    assert [r.topic for r in again.next_rows(10)] == ["t/a", "t/c", "t/b"]  # priority, then oldest first
    again.delete([first])
    assert again.depth() == 2
    with pytest.raises(ValueError):
        again.put("t/d", None, kind="event")
    assert again.depth() == 2


def test_messages_are_deleted_only_once_acknowledged(tmp_path, mosquitto, device_link):
    collector = Collector(mosquitto.url)
    outbox = Outbox(tmp_path / "outbox.db")
    publisher = Publisher(outbox, device_link).start()
    try:
        for i in range(30):
            publisher.enqueue(EVENT_TOPIC, f"event {i}".encode(), kind="event", priority=PRIORITY_EVENT)
        assert collector.wait_for(lambda m: len(m) >= 30)
        assert wait_until(lambda: outbox.depth() == 0)
        assert collector.payloads() == [f"event {i}".encode() for i in range(30)]
    finally:
        publisher.stop()
        collector.stop()


def test_broker_outage_backlog_drains_and_live_messages_overtake_it(tmp_path, mosquitto, device_link):
    collector = Collector(mosquitto.url)
    outbox = Outbox(tmp_path / "outbox.db")
    settings = DeliverySettings(backlog_per_s=25)
    publisher = Publisher(outbox, device_link, settings).start()
    try:
        mosquitto.stop()
        assert wait_until(lambda: not device_link.connected.is_set())
        for i in range(50):
            publisher.enqueue(EVENT_TOPIC, f"backlog {i}".encode(), kind="event", priority=PRIORITY_EVENT)
        assert outbox.depth() == 50  # nothing can be acknowledged while the broker is away

        mosquitto.start()
        assert device_link.connected.wait(40)
        publisher.enqueue(EVENT_TOPIC, b"live", kind="event", priority=PRIORITY_EVENT)
        assert collector.wait_for(lambda m: len(m) >= 51, timeout=60)
        assert wait_until(lambda: outbox.depth() == 0)

        received = collector.payloads()
        backlog = [p for p in received if p.startswith(b"backlog")]
        assert backlog == [f"backlog {i}".encode() for i in range(50)]  # all of it, oldest first
        assert received.index(b"live") < len(received) - 1  # not stuck behind the backlog
    finally:
        publisher.stop()
        collector.stop()


def test_a_restarted_device_sends_what_was_not_acknowledged(tmp_path, mosquitto, device_link):
    outbox = Outbox(tmp_path / "outbox.db")
    mosquitto.stop()
    assert wait_until(lambda: not device_link.connected.is_set())
    first = Publisher(outbox, device_link).start()
    for i in range(5):
        first.enqueue(EVENT_TOPIC, f"event {i}".encode(), kind="event", priority=PRIORITY_EVENT)
    first.stop()
    device_link.stop()
    outbox.close()  # the process is gone: only the file remains

    mosquitto.start()
    collector = Collector(mosquitto.url)
    link = Link(MqttSection(url=mosquitto.url), DEVICE).start()
    reopened = Outbox(tmp_path / "outbox.db")
    second = Publisher(reopened, link).start()
    try:
        assert collector.wait_for(lambda m: len(m) >= 5)
        assert sorted(collector.payloads()) == [f"event {i}".encode() for i in range(5)]
        assert wait_until(lambda: reopened.depth() == 0)
    finally:
        second.stop()
        link.stop()
        collector.stop()


def test_clip_arrives_verified_after_lost_and_corrupted_chunks(tmp_path, mosquitto, device_link):
    """Chunk 1 is lost on the way and chunk 2 arrives corrupted; central asks again and gets a verified clip."""
    local = threading.local()

    def thread_db():  # as central's context does: one connection per thread
        if not hasattr(local, "db"):
            local.db = open_database(tmp_path / "central.db")
        return local.db

    db = thread_db()
    media = MediaStore(thread_db, tmp_path / "media")
    central_link = Link(MqttSection(url=mosquitto.url), "central-test").start()
    assembler = ClipAssembler(thread_db, media, tmp_path / "spool", lambda t, p: central_link.publish(t, p))
    results: list[str | None] = []
    mangled: set[int] = set()
    lock = threading.Lock()

    def on_clip(topic, payload):
        chunk = messages.decode(topic, payload)
        if chunk.index in (1, 2) and chunk.index not in mangled:
            mangled.add(chunk.index)
            if chunk.index == 1:
                return  # lost
            chunk = chunk.model_copy(update={"data": messages.to_base64(b"garbage")})
        with lock:
            results.append(assembler.handle(SITE, chunk))

    collector = Collector(mosquitto.url, handler=lambda t, p: t.endswith("/clip") and on_clip(t, p))
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE, chunk_bytes=4096)
    publisher = Publisher(outbox, device_link, resolvers={"clip": spool.chunk_payload}).start()

    def on_request(topic, payload):
        spool.handle_request(messages.decode(topic, payload))
        publisher.wake()

    device_link.subscribe(topics.device_down(SITE, DEVICE), on_request)
    try:
        data = os.urandom(4096 * 4 + 100)
        source = tmp_path / "clip.mp4"
        source.write_bytes(data)
        clip_id = ids.new_id()
        info = spool.add(source, clip_id=clip_id, event_id=ids.new_id())
        assert info.count == 5 and not source.exists()
        publisher.wake()

        assert wait_until(lambda: db["clips"].count and db["clips"].get(clip_id)["received"] == 3)
        assert db["clips"].get(clip_id)["bad_chunks"] == 1  # chunk 2 already asked for again
        assert wait_until(lambda: outbox.depth() == 0)
        with lock:
            assert assembler.request_missing(stalled_after_s=0) == 1  # chunk 1 never came
        assert wait_until(lambda: "verified" in results)
        assert media.path(info.sha256).read_bytes() == data
        assert db["clips"].get(clip_id)["state"] == "verified"
    finally:
        publisher.stop()
        collector.stop()
        central_link.stop()
        db.close()


def test_quota_drops_oldest_clips_never_events(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(
        tmp_path / "clips", outbox, site=SITE, device=DEVICE, max_bytes=25_000, chunk_bytes=4096
    )
    for i in range(3):
        outbox.put(EVENT_TOPIC, f"event {i}".encode(), kind="event", priority=PRIORITY_EVENT)
    added = []
    for i in range(3):
        path = tmp_path / f"c{i}.avi"
        path.write_bytes(os.urandom(10_000))
        added.append(spool.add(path, clip_id=ids.new_id()))
    assert [c.clip_id for c in spool.clips()] == [c.clip_id for c in added[1:]]
    assert outbox.depth_by_kind() == {"event": 3, "clip": 6}
    assert outbox.counter("clips_dropped") == 1
    assert outbox.counter("clips_dropped_undelivered") == 1
    assert outbox.counter("clip_bytes_dropped") == 10_000


def test_a_full_disk_drops_clips_and_keeps_events(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE)
    path = tmp_path / "c.mp4"
    path.write_bytes(os.urandom(5000))
    spool.add(path, clip_id=ids.new_id())
    outbox.put(EVENT_TOPIC, b"event", kind="event", priority=PRIORITY_EVENT)
    spool.min_free_bytes = 2**62  # more than any disk has: the disk counts as full
    assert spool.enforce_quota() == 1
    assert spool.clips() == [] and outbox.depth_by_kind() == {"event": 1}
    assert outbox.counter("clips_dropped") == 1


def test_a_message_the_broker_refuses_is_kept_not_lost(tmp_path, mosquitto_factory):
    """MQTT 5: the broker's ACL answers 'not authorized' in the PUBACK; the row must stay in the outbox."""
    acl = tmp_path / "acl"
    acl.write_text(f"topic write kuzet/v1/{SITE}/{DEVICE}/up/#\ntopic read kuzet/v1/+/+/up/#\n")
    broker = mosquitto_factory(extra_config=f"acl_file {acl}\n")
    collector = Collector(broker.url)
    link = Link(MqttSection(url=broker.url), DEVICE).start()
    outbox = Outbox(tmp_path / "outbox.db")
    publisher = Publisher(outbox, link).start()
    try:
        forbidden = topics.up(SITE, "cam-8", "event")  # another camera's topic
        publisher.enqueue(forbidden, b"not mine", kind="event", priority=PRIORITY_EVENT)
        publisher.enqueue(EVENT_TOPIC, b"mine", kind="event", priority=PRIORITY_EVENT)
        assert collector.wait_for(lambda m: len(m) >= 1)
        assert wait_until(lambda: publisher.stats["refused"] == 1)
        assert wait_until(lambda: [r.topic for r in outbox.next_rows(10)] == [forbidden])
        assert collector.payloads() == [b"mine"]
    finally:
        publisher.stop()
        link.stop()
        collector.stop()
