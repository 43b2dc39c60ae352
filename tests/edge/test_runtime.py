"""The device runtime's command registry, without a broker: one policy for every device (expiry, queueing on a
command thread, bad messages counted and kept, unknown commands answered, a failing handler answered as failed
while the device carries on)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest

from kuzet.edge.runtime import DeviceRuntime
from kuzet.edge.runtime import commands as registry_module
from kuzet.edge.runtime.commands import BAD_MESSAGES, CommandRegistry, RejectedLog
from kuzet.shared import ids, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Command, CommandResult, Status

DEVICE = "cam-1"


def command(name: str, age_s: float = 0.0, **args) -> Command:
    return Command(
        device=DEVICE,
        command_id=ids.new_id(),
        name=name,
        args=args,
        ts=timeutil.utc_now() - timedelta(seconds=age_s),
    )


class Answers:
    def __init__(self):
        self.results: list[CommandResult] = []
        self.counted: list[str] = []
        self._lock = threading.Condition()

    def __call__(self, result: CommandResult) -> None:
        with self._lock:
            self.results.append(result)
            self._lock.notify_all()

    def of(self, sent: Command, timeout_s: float = 5.0) -> CommandResult:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                found = [r for r in self.results if r.command_id == sent.command_id]
                if found:
                    assert len(found) == 1, "a command is answered exactly once"
                    return found[0]
                left = deadline - time.monotonic()
                assert left > 0, f"no answer to {sent.name}"
                self._lock.wait(left)


@pytest.fixture
def answers():
    return Answers()


@pytest.fixture
def registry(tmp_path, answers):
    registry = CommandRegistry(
        "camera",
        DEVICE,
        answers,
        count=answers.counted.append,
        rejected=RejectedLog(tmp_path / "rejected.jsonl"),
    )
    yield registry
    registry.stop()


def test_an_old_command_is_answered_expired_and_not_carried_out(registry, answers):
    ran = []
    registry.register("detection_off", lambda c: ran.append(c) or (True, "done", {}))
    registry.start()
    stale = command("detection_off", age_s=3600)
    registry.submit(stale)
    result = answers.of(stale)
    assert not result.ok and "expired" in result.message and ran == []
    fresh = command("detection_off", age_s=10)
    registry.submit(fresh)
    assert answers.of(fresh).ok and len(ran) == 1


def test_a_slow_handler_runs_off_the_mqtt_thread_and_never_blocks_it(registry, answers):
    release = threading.Event()
    seen = {}

    def slow(c: Command):
        seen["thread"] = threading.current_thread()
        release.wait(5)
        return True, "slow done", {"n": 1}

    registry.register("install_update", slow, lane="updates")
    registry.register("live_stop", lambda c: (True, "stopped", {}))
    registry.start()
    first, quick = command("install_update"), command("live_stop")
    began = time.monotonic()
    registry.submit(first)  # on the "MQTT thread" (this one): returns at once
    registry.submit(quick)
    assert time.monotonic() - began < 0.5
    assert answers.of(quick).ok  # another lane: not held up by the download
    assert not [r for r in answers.results if r.command_id == first.command_id]
    release.set()
    result = answers.of(first)
    assert result.ok and result.message == "slow done" and result.data == {"n": 1}
    assert seen["thread"] is not threading.current_thread()


def test_a_full_lane_answers_busy(tmp_path, answers):
    registry = CommandRegistry("badge", "badge-1", answers, queue_size=1)
    release = threading.Event()
    registry.register("live_start", lambda c: (release.wait(5), "", {}))
    registry.start()
    try:
        running, waiting, refused = command("live_start"), command("live_start"), command("live_start")
        registry.submit(running)
        deadline = time.monotonic() + 5
        while registry._lanes["commands"].qsize():  # the first one is taken off the queue and runs
            assert time.monotonic() < deadline
            time.sleep(0.01)
        registry.submit(waiting)
        registry.submit(refused)
        assert "busy" in answers.of(refused).message
        release.set()
        assert answers.of(running).ok and answers.of(waiting).ok
    finally:
        registry.stop()


def test_an_unknown_command_is_answered_as_such(registry, answers):
    registry.register("snapshot", lambda c: (True, "", {}))
    registry.start()
    sent = command("cancel_dispatch", dispatch_id="x")
    registry.submit(sent)
    result = answers.of(sent)
    assert not result.ok
    assert (
        "unknown command 'cancel_dispatch'" in result.message
        and "does not do cancel_dispatch" in result.message
    )


def test_a_failing_handler_is_answered_failed_and_the_device_carries_on(registry, answers):
    def broken(c: Command):
        raise RuntimeError("the disk is on fire")

    registry.register("reload_config", broken)
    registry.register("live_stop", lambda c: (True, "stopped", {}))
    registry.start()
    bad, good = command("reload_config"), command("live_stop")
    registry.submit(bad)
    registry.submit(good)
    failed = answers.of(bad)
    assert not failed.ok and "the disk is on fire" in failed.message and "failed" in failed.message
    assert answers.of(good).ok
    again = command("live_stop")
    registry.submit(again)
    assert answers.of(again).ok


def test_a_bad_message_is_counted_and_kept_bounded(registry, answers, tmp_path, monkeypatch):
    notices = []
    registry.on_bad_message = notices.append
    registry.reject("kuzet/v1/s/cam-1/down/command", b"{not json" + b"x" * 10_000, "not JSON")
    assert answers.counted == [BAD_MESSAGES] and registry.bad_messages == 1 and notices == ["not JSON"]
    [record] = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert record["reason"] == "not JSON" and record["topic"].endswith("/down/command")
    assert record["size"] == 10_009 and len(record["payload"]) == registry_module.KEEP_BYTES

    monkeypatch.setattr(registry_module, "ROTATE_BYTES", 10_000)
    for _ in range(5):
        registry.reject("t", b"y" * 5000, "garbage")
    assert (tmp_path / "rejected.jsonl").stat().st_size < 30_000  # the older ones moved aside, once
    assert (tmp_path / "rejected.jsonl.old").exists()
    assert registry.bad_messages == 6


def test_the_runtime_routes_down_messages_and_reports_bad_ones_in_status(tmp_path):
    """The runtime's MQTT handler, called as paho would (no broker): a bad message is counted in the status
    counters and kept; a command is answered through the durable outbox."""
    runtime = DeviceRuntime(
        kind="camera",
        site="pavlodar",
        device=DEVICE,
        mqtt=MqttSection(url="mqtt://127.0.0.1:1"),
        storage=tmp_path / "state",
        spool_dir=tmp_path / "state" / "clips",
        spool_limits={},
        status=lambda: Status(device=DEVICE, kind="camera", software_version="0", uptime_s=0),
        heartbeat_s=lambda: 5.0,
    )
    try:
        topic = topics.down("pavlodar", DEVICE, "command")
        runtime._on_down(topic, b"{not json")
        assert runtime.counters()[BAD_MESSAGES] == 1
        assert (tmp_path / "state" / "rejected.jsonl").exists()
        runtime.commands.register("snapshot", lambda c: (True, "taken", {}))
        sent = command("snapshot")
        runtime.commands.execute(sent)  # what the command thread does
        unknown = command("detection_on")
        runtime._on_down(topic, unknown.model_dump_json().encode())
        rows = runtime.outbox.next_rows(10)
        assert [r.kind for r in rows] == ["command_result", "command_result"]
        results = [CommandResult.model_validate_json(r.payload) for r in rows]
        assert {(r.command_id, r.ok) for r in results} == {
            (sent.command_id, True),
            (unknown.command_id, False),
        }
    finally:
        runtime.outbox.close()
