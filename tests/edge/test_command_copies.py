"""A device carries out a command once, however often it arrives (a QoS 1 re-delivery, or the same command from
the site's other broker after a failover): a copy is dropped without a second answer, also after a restart;
the ids kept are bounded by count and by the command's max age; and through a real Mosquitto, the same command
published twice is carried out once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from support.ingest import wait_for

from kuzet.edge.runtime import DeviceRuntime
from kuzet.edge.runtime.accepted import AcceptedCommands
from kuzet.edge.runtime.commands import CommandRegistry
from kuzet.shared import ids, messages, timeutil, topics
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import Command, CommandResult, Status
from kuzet.shared.mqtt import Link

DEVICE = "cam-1"
SITE = "pavlodar"


def command(name: str = "snapshot", age_s: float = 0.0) -> Command:
    return Command(
        device=DEVICE,
        command_id=ids.new_id(),
        name=name,
        ts=timeutil.utc_now() - timedelta(seconds=age_s),
    )


class Counted:
    """A handler that counts its calls."""

    def __init__(self):
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, sent: Command):
        with self._lock:
            self.calls.append(sent.command_id)
        return True, "taken", {}


def registry_on(accepted_file, answers: list, handler) -> CommandRegistry:
    registry = CommandRegistry("camera", DEVICE, answers.append, accepted_file=accepted_file)
    registry.register("snapshot", handler)
    return registry


def answered(answers: list, sent: Command) -> list[CommandResult]:
    return [r for r in answers if r.command_id == sent.command_id]


def test_a_command_that_comes_twice_is_carried_out_and_answered_once(tmp_path):
    answers, handler = [], Counted()
    registry = registry_on(tmp_path / "accepted.json", answers, handler).start()
    try:
        sent = command()
        registry.submit(sent)
        registry.submit(sent.model_copy())  # the copy from the other broker: same command id
        wait_for(lambda: answered(answers, sent), what="the answer")
        marker = command()  # a lane runs in order: once this is answered, the copy has been dealt with
        registry.submit(marker)
        wait_for(lambda: answered(answers, marker), what="the marker's answer")
        assert handler.calls == [sent.command_id, marker.command_id]
        assert len(answered(answers, sent)) == 1
    finally:
        registry.stop()


def test_a_copy_of_a_refused_command_is_not_answered_again(tmp_path):
    """Central keeps the first answer of a command; a second, different one would be a contradiction."""
    answers = []
    registry = registry_on(None, answers, Counted())
    unknown = command("detection_on")
    registry.submit(unknown)
    registry.submit(unknown)
    assert [r.message for r in answers] == [
        "unknown command 'detection_on': a camera does not do detection_on"
    ]


def test_a_restart_from_the_same_data_folder_still_drops_the_copy(tmp_path):
    answers, handler = [], Counted()
    sent = command()
    before = registry_on(tmp_path / "accepted.json", answers, handler)
    before.submit(sent)
    before.execute(before._lanes["commands"].get_nowait())  # what the lane's thread does
    after = registry_on(tmp_path / "accepted.json", answers, handler)  # the device restarted
    after.submit(sent)
    assert after._lanes["commands"].empty() and handler.calls == [sent.command_id]
    assert len(answered(answers, sent)) == 1
    assert not (tmp_path / ".accepted.json.tmp").exists()  # written whole, then renamed


def test_a_copy_arriving_too_late_is_answered_expired_for_central_to_ignore(tmp_path):
    answers, handler = [], Counted()
    registry = registry_on(None, answers, handler)
    late = command(age_s=3600)
    registry.submit(late)
    [result] = answers
    assert not result.ok and result.data == {messages.EXPIRED: True} and handler.calls == []


def test_the_ids_kept_are_bounded_by_count(tmp_path):
    path = tmp_path / "accepted.json"
    accepted = AcceptedCommands(path, max_age_s=300, limit=3)
    sent = [command() for _ in range(5)]
    assert all(accepted.first_time(c) for c in sent)
    kept = json.loads(path.read_text())["sent_at"]
    assert list(kept) == [c.command_id for c in sent[2:]]  # the earliest went first
    again = AcceptedCommands(path, max_age_s=300, limit=3)
    assert [again.first_time(c) for c in sent[2:]] == [False, False, False]


def test_an_id_is_forgotten_once_its_command_is_too_old_to_be_carried_out(tmp_path):
    path = tmp_path / "accepted.json"
    clock = {"now": timeutil.utc_now()}
    accepted = AcceptedCommands(path, max_age_s=300, now=lambda: clock["now"])
    old, recent = command(age_s=200), command(age_s=10)
    assert accepted.first_time(old) and accepted.first_time(recent)
    clock["now"] += timedelta(seconds=150)  # ``old`` is 350 s old now: a copy is refused as expired anyway
    assert accepted.first_time(command())
    assert old.command_id not in json.loads(path.read_text())["sent_at"]
    restarted = AcceptedCommands(path, max_age_s=300, now=lambda: clock["now"])
    assert not restarted.first_time(recent)
    assert restarted.first_time(old)  # forgotten: the registry refuses it as expired before asking


def test_a_command_interrupted_by_the_device_stopping_is_answered_once_it_starts_again(tmp_path):
    """Killed while carrying a command out (or before it started): once the device is up again it answers the
    command as interrupted, does not carry it out again, and still drops its copy; a command answered before
    the device stopped is not answered again."""
    answers, handler = [], Counted()
    done, cut_short = command(), command()
    before = registry_on(tmp_path / "accepted.json", answers, handler)
    before.submit(done)
    before.execute(before._lanes["commands"].get_nowait())
    before.submit(cut_short)  # accepted, queued: the device is killed before its lane answers it
    assert [r.command_id for r in answers] == [done.command_id]

    after = registry_on(tmp_path / "accepted.json", answers, handler).start()
    try:
        [interrupted] = answered(answers, cut_short)
        assert not interrupted.ok and interrupted.data == {messages.INTERRUPTED: True}
        assert interrupted.name == "snapshot" and interrupted.message.startswith("interrupted:")
        assert len(answered(answers, done)) == 1 and handler.calls == [done.command_id]
        after.submit(cut_short)  # its copy from the other broker
        marker = command()
        after.submit(marker)
        wait_for(lambda: answered(answers, marker), what="the marker's answer")
        assert handler.calls == [done.command_id, marker.command_id]
        assert len(answered(answers, cut_short)) == 1
    finally:
        after.stop()
    again = registry_on(tmp_path / "accepted.json", answers, handler).start()  # and once more: nothing open
    again.stop()
    assert len(answered(answers, cut_short)) == 1 and len(answers) == 3


def test_a_file_from_before_open_commands_is_read(tmp_path):
    path = tmp_path / "accepted.json"
    sent = command()
    path.write_text(json.dumps({sent.command_id: sent.ts.timestamp()}))  # {id: sent at}, as before
    accepted = AcceptedCommands(path, max_age_s=300)
    assert not accepted.first_time(sent) and accepted.interrupted() == []


def test_an_unreadable_file_starts_empty_rather_than_refusing_commands(tmp_path):
    path = tmp_path / "accepted.json"
    path.write_text("{not json")
    assert AcceptedCommands(path, max_age_s=300).first_time(command())


def test_the_same_command_published_twice_through_mosquitto_is_carried_out_once(tmp_path, mosquitto):
    """Central's side publishes the very same message twice (as it does on a primary and a standby that the
    device both has a session on); the device runs it once, answers once, and still drops it after a restart."""
    results: list[CommandResult] = []
    link = Link(MqttSection(url=mosquitto.url), "central-test")
    link.subscribe(
        topics.up(SITE, DEVICE, "command_result"), lambda t, p: results.append(messages.decode(t, p))
    )
    link.start()
    handler = Counted()

    def device() -> DeviceRuntime:
        runtime = DeviceRuntime(
            kind="camera",
            site=SITE,
            device=DEVICE,
            mqtt=MqttSection(url=mosquitto.url),
            storage=tmp_path / "state",
            spool_dir=tmp_path / "state" / "clips",
            spool_limits={},
            status=lambda: Status(device=DEVICE, kind="camera", software_version="0", uptime_s=0),
            heartbeat_s=lambda: 60.0,
        )
        runtime.commands.register("snapshot", handler)
        return runtime.start()

    def publish(message: Command) -> None:
        link.publish(topics.down(SITE, DEVICE, "command"), messages.encode(message)).wait_for_publish(5)

    def answered_once_after(marker: Command) -> None:
        """Publish ``marker`` and wait for its answer: the messages published before it were dealt with."""
        publish(marker)
        wait_for(lambda: answered(results, marker), what="the marker's answer")

    sent = command()
    runtime = device()
    try:
        publish(sent)
        publish(sent)
        answered_once_after(command())
        assert handler.calls.count(sent.command_id) == 1 and len(answered(results, sent)) == 1
    finally:
        runtime.stop()
    runtime = device()  # restarted, same data folder
    try:
        publish(sent)
        answered_once_after(command())
        assert handler.calls.count(sent.command_id) == 1 and len(answered(results, sent)) == 1
    finally:
        runtime.stop()
        link.stop()
