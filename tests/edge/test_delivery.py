"""Store-and-forward through a real Mosquitto: the outbox survives restarts and broker outages, a backlog
does not hold back live messages, clips arrive verified even when chunks are lost, and the quota drops clips,
never events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kuzet.central.ingest.clips import ClipAssembler
from kuzet.central.store.media import MediaStore
from kuzet.central.store.schema import open_database
from kuzet.edge.delivery import (
    PRIORITY_CLIP,
    PRIORITY_EVENT,
    ClipSpool,
    DeliverySettings,
    Outbox,
    Publisher,
)
from kuzet.shared import ids, messages, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

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
    with outbox.transaction() as tx:
        first = tx.put("t/a", b"one", kind="event", priority=PRIORITY_EVENT)
        tx.count("events_created")
    with outbox.transaction() as tx:
        tx.put("t/b", None, kind="clip", priority=PRIORITY_CLIP, ref="clip:0")
        tx.put("t/c", b"three", kind="event", priority=PRIORITY_EVENT)
    outbox.close()

    again = Outbox(tmp_path / "outbox.db")
    assert again.counter("events_created") == 1
    assert [r.topic for r in again.next_rows(10)] == ["t/a", "t/c", "t/b"]  # priority, then oldest first
    again.delete([first])
    assert again.depth() == 2
    with pytest.raises(ValueError), again.transaction() as tx:
        tx.put("t/d", None, kind="event")
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

        # 0, 3 and 4 arrive; chunk 2 (bad) is asked for again at once, and may already be back
        assert wait_until(lambda: db["clips"].count and db["clips"].get(clip_id)["received"] >= 3)
        assert db["clips"].get(clip_id)["bad_chunks"] == 1
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
        with outbox.transaction() as tx:
            tx.put(EVENT_TOPIC, f"event {i}".encode(), kind="event", priority=PRIORITY_EVENT)
    added = []
    for i in range(3):
        path = tmp_path / f"c{i}.avi"
        path.write_bytes(os.urandom(10_000))
        added.append(spool.add(path, clip_id=ids.new_id()))
    assert [c.clip_id for c in spool.clips()] == [c.clip_id for c in added[1:]]
    assert outbox.depth_by_kind() == {"event": 3, "clip": 6, "clip_lost": 1}
    assert outbox.counter("clips_dropped") == 1
    assert outbox.counter("clips_dropped_undelivered") == 1
    assert outbox.counter("clip_bytes_dropped") == 10_000
    # central, which has the clip's event and may have some of its chunks, is told this clip will never come
    [lost] = lost_messages(outbox)
    assert (lost.clip_id, lost.reason) == (added[0].clip_id, "quota") and "3 chunk(s)" in lost.detail
    assert outbox.counter("clips_lost_quota") == 1


def test_a_full_disk_drops_clips_and_keeps_events(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE)
    path = tmp_path / "c.mp4"
    path.write_bytes(os.urandom(5000))
    spool.add(path, clip_id=ids.new_id())
    with outbox.transaction() as tx:
        tx.put(EVENT_TOPIC, b"event", kind="event", priority=PRIORITY_EVENT)
    spool.min_free_bytes = 2**62  # more than any disk has: the disk counts as full
    assert spool.enforce_quota() == 1
    assert spool.clips() == [] and outbox.depth_by_kind() == {"event": 1, "clip_lost": 1}
    assert outbox.counter("clips_dropped") == 1


def test_a_delivered_clip_dropped_later_is_not_reported_lost(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE)
    path = tmp_path / "c.mp4"
    path.write_bytes(os.urandom(5000))
    spool.add(path, clip_id=ids.new_id())
    outbox.delete([row.id for row in outbox.next_rows(10)])  # the broker acknowledged every chunk
    spool.min_free_bytes = 2**62
    assert spool.enforce_quota() == 1
    assert outbox.depth() == 0 and outbox.counter("clips_lost") == 0


def lost_messages(outbox: Outbox) -> list[messages.ClipLost]:
    topic = topics.up(SITE, DEVICE, "clip_lost")
    return [messages.decode(topic, row.payload) for row in outbox.next_rows(100) if row.kind == "clip_lost"]


def test_a_promised_clip_ends_queued_or_reported_lost(tmp_path):
    """A clip promised with its event is listed until it is queued or reported lost, across restarts."""
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE, chunk_bytes=4096)
    kept, dropped = ids.new_id(), ids.new_id()
    event_id = ids.new_id()
    with outbox.transaction() as tx:
        tx.put(EVENT_TOPIC, b"the event naming both clips", kind="event", priority=PRIORITY_EVENT)
        for clip_id in (kept, dropped):
            spool.promise(tx, clip_id, recording=tmp_path / f"{clip_id}.webm", event_id=event_id)
    outbox.close()

    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE, chunk_bytes=4096)
    assert [(p.clip_id, p.event_id) for p in spool.promises()] == [(kept, event_id), (dropped, event_id)]
    path = tmp_path / f"{kept}.webm"
    path.write_bytes(os.urandom(9000))
    spool.add(path, clip_id=kept, event_id=event_id)
    spool.lost(dropped, "interrupted", "unreadable", event_id=event_id)
    assert spool.promises() == []
    assert outbox.depth_by_kind() == {"event": 1, "clip": 3, "clip_lost": 1}
    [lost] = lost_messages(outbox)
    assert (lost.clip_id, lost.event_id, lost.reason) == (dropped, event_id, "interrupted")
    assert outbox.counter("clips_lost_interrupted") == 1


KILLED_ADDING_A_CLIP = """
import os, shutil, signal, sys
from pathlib import Path
from kuzet.edge.delivery import ClipSpool, Outbox
state, clip_id, kill_in = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
outbox = Outbox(state / "outbox.db")
spool = ClipSpool(state / "clips", outbox, site="pavlodar", device="cam-7", chunk_bytes=4096)
with outbox.transaction() as tx:
    spool.promise(tx, clip_id, recording=state / "recording.webm")
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if kill_in == "move":
    shutil.move = die  # the sidecar is written, the clip not moved in yet
else:
    spool._queue_all = die  # moved in, no chunk queued yet
spool.add(state / "recording.webm", clip_id=clip_id)
"""


@pytest.mark.parametrize("kill_in", ["move", "queue"])
def test_sigkill_while_a_clip_moves_into_the_spool_loses_nothing(tmp_path, kill_in):
    data = os.urandom(3 * 4096 + 10)
    (tmp_path / "recording.webm").write_bytes(data)
    clip_id = ids.new_id()
    done = subprocess.run(
        [sys.executable, "-c", KILLED_ADDING_A_CLIP, str(tmp_path), clip_id, kill_in],
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == -9
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE, chunk_bytes=4096)
    [promise] = spool.promises()  # still owed to central
    if kill_in == "move":
        # The lone sidecar is gone; the file is where it was recorded, and the restarted agent adds it again.
        assert spool.info(clip_id) is None and not spool.resume(clip_id)
        spool.add(promise.recording, clip_id=clip_id)
    else:
        assert spool.resume(clip_id)
    assert spool.promises() == [] and outbox.depth_by_kind() == {"clip": 4}
    rows = outbox.next_rows(10)
    chunks = [messages.decode(topics.up(SITE, DEVICE, "clip"), spool.chunk_payload(row)) for row in rows]
    assert b"".join(messages.from_base64(c.data) for c in chunks) == data


def test_a_request_for_a_clip_no_longer_here_is_answered_lost(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE)
    recording = ids.new_id()
    with outbox.transaction() as tx:
        spool.promise(tx, recording, recording=tmp_path / "r.webm")
    assert spool.handle_request(messages.ClipRequest(device=DEVICE, clip_id=recording)) == 0  # still coming
    gone = ids.new_id()
    assert spool.handle_request(messages.ClipRequest(device=DEVICE, clip_id=gone)) == 1
    [lost] = lost_messages(outbox)
    assert (lost.clip_id, lost.reason) == (gone, "gone")


def test_central_marks_a_clip_lost_through_the_broker(tmp_path, mosquitto, device_link):
    """The device's clip_lost travels through Mosquitto; central marks the clip lost and stops asking for it."""
    local = threading.local()

    def thread_db():  # as central's context does: one connection per thread
        if not hasattr(local, "db"):
            local.db = open_database(tmp_path / "central.db")
        return local.db

    db = thread_db()
    media = MediaStore(thread_db, tmp_path / "media")
    asked = []
    assembler = ClipAssembler(thread_db, media, tmp_path / "spool", lambda t, p: asked.append(t))
    lock = threading.Lock()
    clip = tmp_path / "c.mp4"
    clip.write_bytes(os.urandom(3 * 4096))

    def on_message(topic, payload):
        message = messages.decode(topic, payload)
        with lock:
            if message.type == "clip" and message.index == 0:  # only the first chunk gets through
                assembler.handle(SITE, message)
            elif message.type == "clip_lost":
                assembler.lost(SITE, message)

    collector = Collector(mosquitto.url, handler=on_message)
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE, chunk_bytes=4096)
    publisher = Publisher(outbox, device_link, resolvers={"clip": spool.chunk_payload}).start()
    try:
        info = spool.add(clip, clip_id=ids.new_id(), event_id=ids.new_id())
        publisher.wake()
        assert wait_until(lambda: outbox.depth() == 0)
        spool.min_free_bytes = 2**62  # the disk fills up: the clip goes
        spool.max_bytes = 0
        with outbox.transaction() as tx:
            tx.put(spool.topic, None, kind="clip", priority=PRIORITY_CLIP, ref=f"{info.clip_id}:000001")
        assert spool.enforce_quota() == 1  # chunk 1 was queued again, undelivered: central is told
        publisher.wake()
        assert wait_until(lambda: db["clips"].get(info.clip_id)["state"] == "lost")
        row = db["clips"].get(info.clip_id)
        assert row["lost_reason"].startswith("quota: dropped") and row["event_id"] == info.event_id
        with lock:
            assert assembler.request_missing(stalled_after_s=0) == 0 and asked == []
    finally:
        publisher.stop()
        collector.stop()
        db.close()


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


def test_central_ingest_marks_a_promised_clip_lost_and_shows_it_on_the_event(
    tmp_path, mosquitto, device_link
):
    """A camera restarted after a kill whose partial recording could not be read: the event that named the
    clip and the clip_lost report go through Mosquitto into central's real ingest."""
    from support.ingest import event, make_central, wait_for

    from kuzet.central.ingest.service import IngestService

    central = make_central(tmp_path, mosquitto.url)
    ingest = IngestService(central).start()
    outbox = Outbox(tmp_path / "outbox.db")
    spool = ClipSpool(tmp_path / "clips", outbox, site=SITE, device=DEVICE)
    publisher = Publisher(outbox, device_link, resolvers={"clip": spool.chunk_payload}).start()
    try:
        clip_id = ids.new_id()
        opened = event(DEVICE, ids.new_id(), 0, clip_id=clip_id)
        with publisher.transaction() as tx:
            tx.put(EVENT_TOPIC, messages.encode(opened), kind="event", priority=PRIORITY_EVENT)
            spool.promise(tx, clip_id, recording=tmp_path / "gone.mp4", event_id=opened.event_id)
        [promise] = spool.promises()
        spool.lost(promise.clip_id, "interrupted", "unreadable partial file", event_id=promise.event_id)
        publisher.wake()

        def clip_row():
            rows = list(central.db().query("SELECT * FROM clips WHERE clip_id = ?", [clip_id]))
            return rows[0] if rows else None

        row = wait_for(clip_row, 20, "central to mark the clip lost")
        assert (row["state"], row["lost_reason"], row["event_id"]) == (
            "lost",
            "interrupted: unreadable partial file",
            opened.event_id,
        )
        assert ingest.counters.dead_letters == 0
        stored = next(central.db().query("SELECT clip_id FROM events WHERE event_id = ?", [opened.event_id]))
        assert stored["clip_id"] == clip_id  # the event still names its clip; the clip says why it never came
    finally:
        publisher.stop()
        ingest.stop()
