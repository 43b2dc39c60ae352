"""Live stream on request: a live_start command from central starts low-rate JPEG frames from the body
camera (real footage here), within the bandwidth cap, until it stops by itself or is stopped."""

from __future__ import annotations

import json

import pytest
from support.patrol import SITE, point, start_badge, wait_for

from kuzet.shared import ids, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Command, CommandResult, LiveFrame, decode, encode, from_base64
from kuzet.shared.mqtt import Link


@pytest.fixture
def wire(mosquitto):
    """Central's side of the wire: sends commands, collects what the badge sends back."""
    received: list = []
    link = Link(MqttSection(url=mosquitto.url), "central-test")
    link.subscribe(topics.all_up(), lambda topic, payload: received.append(decode(topic, payload)))
    link.start()

    def command(name: str, **args) -> str:
        message = Command(device="badge-3", command_id=ids.new_id(), name=name, args=args)
        link.publish(topics.down(SITE, "badge-3", "command"), encode(message)).wait_for_publish(5)
        return message.command_id

    yield command, received
    link.stop()


def of(kind, received):
    return [m for m in received if isinstance(m, kind)]


def test_live_stream_is_capped_and_stops_by_itself(tmp_path, mosquitto, footage, wire):
    command, received = wire
    agent = start_badge(
        tmp_path,
        mosquitto.url,
        "badge-3",
        point(0),
        camera={"source": str(footage / "pets09-s2l1" / "vtest.avi")},
        live={"fps": 5, "max_kbps": 96, "width": 480, "jpeg_quality": 80, "max_duration_s": 30},
    )
    try:
        command_id = command("live_start", fps=5, duration_s=3)
        [result] = wait_for(
            lambda: [r for r in of(CommandResult, received) if r.command_id == command_id], what="result"
        )
        assert result.ok and result.data["duration_s"] == 3
        wait_for(
            lambda: agent.live is None or not agent.live.running,
            timeout_s=20,
            what="the stream to stop by itself",
        )
        frames = of(LiveFrame, received)
        assert len(frames) >= 3
        assert {f.stream_id for f in frames} == {result.data["stream_id"]}
        assert [f.seq for f in frames] == list(range(len(frames)))
        sizes = [len(from_base64(f.data)) for f in frames]
        assert all(from_base64(f.data)[:2] == b"\xff\xd8" for f in frames)  # JPEG
        assert frames[0].width == 480
        # 96 kbit/s for 3 s, plus the one-second allowance it starts with.
        assert sum(sizes) <= 96_000 / 8 * (3 + 1)
        count = len(frames)
        assert "live stream ended" in " ".join(agent.notices)
        assert len(of(LiveFrame, received)) == count  # nothing after the end

        # Started again, narrower (never wider than [live] width), and stopped by the operator.
        again_id = command("live_start", fps=2, width=320)
        wait_for(lambda: len(of(LiveFrame, received)) > count, what="frames again")
        [again] = wait_for(
            lambda: [r for r in of(CommandResult, received) if r.command_id == again_id], what="result"
        )
        assert again.data["width"] == 320 and of(LiveFrame, received)[count].width == 320
        wide_id = command("live_start", fps=2, width=1920)
        [wide] = wait_for(
            lambda: [r for r in of(CommandResult, received) if r.command_id == wide_id], what="result"
        )
        assert wide.data["width"] == 480
        count = len(of(LiveFrame, received))
        stop_id = command("live_stop")
        wait_for(
            lambda: [r for r in of(CommandResult, received) if r.command_id == stop_id and r.ok],
            what="stop result",
        )
        assert agent.live is None

        bad_id = command("install_update")
        [refused] = wait_for(
            lambda: [r for r in of(CommandResult, received) if r.command_id == bad_id], what="refusal"
        )
        assert not refused.ok and "updates are not configured" in refused.message  # no [updates] here
    finally:
        agent.stop()


def test_bad_message_from_central_is_kept_and_the_badge_carries_on(tmp_path, mosquitto, wire):
    command, received = wire
    agent = start_badge(tmp_path, mosquitto.url, "badge-3", point(0))
    sender = Link(MqttSection(url=mosquitto.url), "garbage-sender").start()
    try:
        sender.publish(
            topics.down(SITE, "badge-3", "dispatch"), b'{"v": 1, "type": "dispatch"'
        ).wait_for_publish(5)
        rejected = tmp_path / "badge-3" / "rejected.jsonl"
        wait_for(
            lambda: rejected.exists() and rejected.read_text().endswith("\n"), what="the bad message kept"
        )
        [record] = [json.loads(line) for line in rejected.read_text().splitlines()]
        assert "not JSON" in record["reason"] and record["topic"].endswith("/down/dispatch")
        assert agent.inbox.items() == []
        stop_id = command("live_stop")  # still listening
        wait_for(lambda: [r for r in of(CommandResult, received) if r.command_id == stop_id], what="answer")
    finally:
        sender.stop()
        agent.stop()
