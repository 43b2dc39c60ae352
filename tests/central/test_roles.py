"""Central split over processes (``kuzet central run --role``): which parts each role starts, two ingest
workers in one ``$share/`` group with one killed mid-stream, the routing standby taking over from a killed
leader with a dispatch's deadline still running, and what one process stores reaching another's live
stream. Real Mosquitto and a throw-away PostgreSQL (the live bus and the leader election); the workers'
store is that PostgreSQL, or one SQLite file they share on one host."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

import pytest
import tomli_w
from support.ingest import REPO, SITE, event, make_central, new_id, up, wait_for
from support.patrol import Camera, inbox_has, point, start_badge
from support.roles import WorkerProcess

from kuzet.central import cli
from kuzet.central.broker import free_port
from kuzet.central.cli import ROLES
from kuzet.central.operations import NotRunning
from kuzet.central.remote_routing import RemoteRouting, RequestServer
from kuzet.central.roles import PARTS, RoutingLeader
from kuzet.central.routing.service import RoutingError, RoutingService
from kuzet.central.service import serve, start_parts
from kuzet.central.store import portable
from kuzet.shared import messages, timeutil
from kuzet.shared.config import MqttSection
from kuzet.shared.mqtt import Link

SPLIT = {
    "mqtt": {"protocol": "5"},
    "ingest": {"share_group": "ingest", "batch_window_ms": 20},
    "worker": {"leader_poll_s": 0.2, "inbox_poll_s": 0.1},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request) -> str:
    """The store the workers share: one SQLite file (one host), or PostgreSQL."""
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""


def rows(central, sql: str, params=()) -> list[dict]:
    return portable.rows(central.db(), sql, params)


def count(central, table: str) -> int:
    return rows(central, f"SELECT count(*) AS n FROM {table}")[0]["n"]


def split_central(tmp_path, url, **sections):
    merged = {name: {**SPLIT.get(name, {}), **sections.get(name, {})} for name in {*SPLIT, *sections}}
    merged["mqtt"]["brokers"] = [url]
    return make_central(tmp_path, url, **merged)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _counter(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


def test_the_command_line_offers_every_role():
    assert tuple(PARTS) == ROLES


def test_a_split_role_needs_a_shared_store(tmp_path):
    central = make_central(tmp_path)
    assert serve(central, role="ingest") == 2  # SQLite alone: no bus, no election; refused, nothing started
    with pytest.raises(ValueError, match="unknown role"):
        start_parts(central, contextlib.ExitStack(), role="everything", bus_url="postgresql://x")


def test_each_role_starts_its_own_parts(tmp_path, mosquitto, postgres_url):
    central = split_central(tmp_path, mosquitto.url, worker={"metrics_port": free_port()})
    with contextlib.ExitStack() as running:
        ingest = start_parts(central, running, role="ingest", instance="7", bus_url=postgres_url)
        assert ingest.ingest is not None and ingest.web is None and ingest.leader is None
        assert ingest.routing is None and ingest.worker_http is not None
        assert central.config.ingest.client_id == "central-pavlodar-ingest-7"  # its own MQTT session
        status, body = _get(f"{ingest.worker_http.url}/healthz")
        health = json.loads(body)
        assert status == 200 and health["role"] == "ingest" and health["leading"] is None
        assert health["ingest"]["writer_alive"]
        status, text = _get(f"{ingest.worker_http.url}/metrics")
        assert 'kuzet_worker_info{instance="7",role="ingest"} 1.0' in text
        assert "kuzet_ingest_lag_seconds 0.0" in text and "kuzet_ingest_queue_depth" in text
        assert "kuzet_routing_leader" not in text
        # What it kept for routing and nobody took for minutes: no routing leader anywhere.
        long_ago = timeutil.to_wire(timeutil.utc_now() - timedelta(minutes=2))
        with portable.transaction(central.db()):
            portable.execute(
                central.db(),
                "INSERT INTO routing_inbox (site, topic, payload, received_at) VALUES (?, ?, ?, ?)",
                [SITE, up("badge-1", "location"), b"{}", long_ago],
            )
        status, body = _get(f"{ingest.worker_http.url}/healthz")
        assert status == 503 and "is a routing worker leading?" in json.loads(body)["problems"][0]

    central = split_central(tmp_path, mosquitto.url, worker={"metrics_port": free_port()})
    with contextlib.ExitStack() as running:
        routing = start_parts(central, running, role="routing", instance="a", bus_url=postgres_url)
        assert routing.ingest is None and routing.web is None and routing.leader is not None
        wait_for(lambda: routing.leader.routing is not None, what="the only routing worker leading")
        status, text = _get(f"{routing.worker_http.url}/metrics")
        assert "kuzet_routing_leader 1.0" in text
        # The row ingest kept is taken by the leader's first round (which may not have run yet: a busy machine).
        wait_for(
            lambda: "kuzet_routing_inbox_waiting 0.0" in _get(f"{routing.worker_http.url}/metrics")[1],
            what="the leader taking the row ingest kept for routing",
        )

    central = split_central(tmp_path, mosquitto.url, http={"port": free_port()})
    with contextlib.ExitStack() as running:
        web = start_parts(central, running, role="web", instance="1", bus_url=postgres_url)
        assert web.web is not None and web.ingest is None and web.leader is None and web.worker_http is None
        status, body = _get(f"{web.web.url}/healthz")
        # Ingest runs elsewhere: a web worker is healthy without it.
        assert status == 200, body
        assert json.loads(body)["role"] == "web"


def test_two_ingest_workers_share_the_stream_and_a_killed_one_loses_nothing(
    tmp_path, mosquitto, postgres_url, store_url
):
    """Events published at QoS 1 while one of two ingest workers is SIGKILLed and started again (as systemd
    does): each stored once, and each kept once for routing. Meanwhile a web worker (this process) sees them
    live, stored by the other processes."""
    watcher = split_central(tmp_path, mosquitto.url, store={"url": store_url})
    data_dir, config = watcher.data_dir, watcher.config.model_copy(deep=True)
    workers = [WorkerProcess(config, data_dir, "ingest", name, postgres_url) for name in ("1", "2")]
    running = contextlib.ExitStack()
    device = None
    try:
        start_parts(watcher, running, role="web", web=False, bus_url=postgres_url)
        live = watcher.hub.subscribe()
        for worker in workers:
            wait_for(
                lambda w=worker: (w.health() or {}).get("status") == "ok", 60, f"ingest {worker.instance}"
            )
        device = Link(MqttSection(url=mosquitto.url, protocol="5"), "cam-1-test").start()
        sent = [new_id() for _ in range(400)]
        for index, event_id in enumerate(sent):
            device.publish(
                up("cam-1", "event"), messages.encode(event("cam-1", event_id, 0))
            ).wait_for_publish(5)
            if index == 150:
                workers[0].kill()
            if index % 50 == 0:
                time.sleep(0.05)
        workers[0] = WorkerProcess(config, data_dir, "ingest", "1", postgres_url)  # systemd's restart
        wait_for(lambda: count(watcher, "events") == len(sent), 90, "every event stored")
        assert {row["event_id"] for row in rows(watcher, "SELECT event_id FROM events")} == set(sent)
        # Kept for routing once each: a message redelivered after the kill is a duplicate, not kept again.
        assert count(watcher, "routing_inbox") == len(sent)
        wait_for(lambda: (workers[0].health() or {}).get("status") == "ok", 60, "ingest 1 back")
        stored = [_counter(w.metrics(), "kuzet_ingest_stored_total") for w in workers]
        print(f"stored by the restarted worker 1 and by worker 2: {stored}")
        assert stored[1] > 0  # the survivor took its share

        seen = set()
        deadline = time.monotonic() + 30
        while seen != set(sent) and time.monotonic() < deadline:
            update = live.get(0.5)
            if update is not None and update.channel == "event":
                seen.add(update.data["event_id"])
        assert seen == set(sent), f"{len(set(sent) - seen)} events never reached the web worker's stream"
    finally:
        if device is not None:
            device.stop()
        running.close()
        for worker in workers:
            worker.stop()


@pytest.fixture
def camera(mosquitto):
    camera = Camera(mosquitto.url)
    yield camera
    camera.stop()


def test_the_routing_standby_takes_over_and_the_open_dispatch_still_escalates(
    tmp_path, mosquitto, postgres_url, store_url, camera
):
    """Ingest, a routing leader and a standby, each a process: a dispatch is sent, the leader is killed
    before the badge's acknowledgement deadline, and the standby, now leading, escalates it on time."""
    watcher = split_central(tmp_path, mosquitto.url, routing={"ack_timeout_s": 8}, store={"url": store_url})
    data_dir, config = watcher.data_dir, watcher.config
    workers = {
        "ingest": WorkerProcess(config, data_dir, "ingest", "1", postgres_url),
        "a": WorkerProcess(config, data_dir, "routing", "a", postgres_url),
    }
    badges = []
    running = contextlib.ExitStack()
    try:
        wait_for(workers["a"].leading, 60, "routing worker a leading")
        workers["b"] = WorkerProcess(config, data_dir, "routing", "b", postgres_url)
        wait_for(lambda: workers["b"].health(), 60, "routing worker b answering")
        assert not workers["b"].leading()  # one leader per site
        wait_for(lambda: (workers["ingest"].health() or {}).get("status") == "ok", 60, "ingest")

        near = start_badge(tmp_path, mosquitto.url, "badge-near", point(100))
        second = start_badge(tmp_path, mosquitto.url, "badge-second", point(600))
        badges += [near, second]

        def units_ready():
            return len(rows(watcher, "SELECT device_id FROM units WHERE online = 1 AND lat IS NOT NULL")) == 2

        wait_for(units_ready, 60, "both units known to routing with a position")
        camera.event(point(0))
        [first] = wait_for(inbox_has(near), 30, "the first dispatch at badge-near")
        workers["a"].kill()
        killed_at = time.monotonic()
        wait_for(workers["b"].leading, 30, "the standby leading")
        print(f"routing leader failover: {time.monotonic() - killed_at:.2f} s")

        # badge-near never answers: the deadline set by the dead leader escalates on the new one.
        [escalated] = wait_for(inbox_has(second), 60, "the dispatch escalated to badge-second")
        assert escalated.dispatch.event_id == first.dispatch.event_id
        log = rows(
            watcher, "SELECT state FROM dispatch_log WHERE dispatch_id = ? ORDER BY id", [first.dispatch_id]
        )
        assert [r["state"] for r in log] == ["sent", "timed_out"]
        [row] = rows(watcher, "SELECT * FROM dispatches WHERE unit = ?", ["badge-second"])
        assert row["attempt"] == 2 and row["site"] == SITE

        # An operator on a web worker (this process) acts through the new leader.
        web = start_parts(watcher, running, role="web", web=False, bus_url=postgres_url)
        board = web.operations.routing.unit_board()
        assert {unit["device_id"] for unit in board["units"]} == {"badge-near", "badge-second"}
        cancelled = web.operations.cancel_dispatch(row["dispatch_id"], "op-1", "the caller rang back")
        assert cancelled["state"] == "cancelled" and cancelled["log"][-1]["by"] == "op-1"
        wait_for(lambda: second.inbox.get(row["dispatch_id"]).state == "cancelled", 30, "badge-second told")
        with pytest.raises(RoutingError, match="already cancelled") as refused:
            web.operations.cancel_dispatch(row["dispatch_id"], "op-1", "again")
        assert refused.value.status == 409
        assert count(watcher, "routing_requests") == 0  # each answered request is gone
    finally:
        running.close()
        for badge in badges:
            badge.stop()
        for worker in workers.values():
            worker.stop()


def test_a_web_worker_without_a_routing_leader_says_so_and_leaves_no_request(tmp_path):
    central = make_central(tmp_path)
    remote = RemoteRouting(central, timeout_s=0.3)
    with pytest.raises(NotRunning, match="did not take the request"):
        remote.cancel("01J00000000000000000000000", "op-1", "no leader")
    assert central.db()["routing_requests"].count == 0  # a later leader will not carry it out


def test_the_leader_answers_requests_with_routing_s_own_refusals(tmp_path):
    central = make_central(tmp_path)
    with contextlib.ExitStack() as running:
        routing = RoutingService(central).start()
        running.callback(routing.stop)
        server = RequestServer(central, routing).start()
        running.callback(server.stop)
        remote = RemoteRouting(central)
        with pytest.raises(RoutingError, match="does not exist") as missing:
            remote.dispatch("01J00000000000000000000000")
        assert missing.value.status == 404
        assert remote.waiting() == [] and remote.units.all() == []
        assert server.served == 3


def test_a_process_that_cannot_start_routing_steps_down_for_another(tmp_path, postgres_url):
    central = make_central(tmp_path)
    attempts = []

    def failing(jobs):
        attempts.append(1)
        raise RuntimeError("the media bucket is unreachable")

    broken = RoutingLeader(central, postgres_url, failing, poll_s=0.1).start()
    try:
        wait_for(lambda: len(attempts) >= 2, 30, "the broken leader trying again")
        assert broken.routing is None  # nothing left half started
        healthy = RoutingLeader(make_central(tmp_path / "other"), postgres_url, lambda jobs: None, poll_s=0.1)
        healthy.start()
        try:
            wait_for(lambda: healthy.routing is not None, 30, "the healthy process leading")
        finally:
            healthy.stop()
        assert healthy.routing is None  # stopping stops routing
    finally:
        broken.stop()


def test_the_command_line_refuses_a_split_role_without_postgresql(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--data-dir", str(tmp_path), "run", "--role", "routing", "--instance", "a"])
    assert cli.run(args) == 2
    assert "set [store] url" in capsys.readouterr().err
    assert not (tmp_path / "kuzet.db").exists()  # refused before anything was opened


def test_the_command_line_runs_an_ingest_worker_on_postgresql(tmp_path, mosquitto, postgres_url):
    """``kuzet central --config central.toml run --role ingest --instance 1 --metrics-port P``, as the systemd
    unit runs it: healthy, in its own MQTT session, storing into PostgreSQL; SIGTERM stops it cleanly."""
    metrics_port = free_port()
    config = {
        "mqtt": {"brokers": [mosquitto.url], "protocol": "5"},
        "ingest": {"share_group": "ingest", "accept_unregistered": True},
        "store": {"url": postgres_url},
        "storage": {"dir": str(tmp_path / "data")},
    }
    path = tmp_path / "central.toml"
    path.write_text(tomli_w.dumps(config))
    command = [sys.executable, "-m", "kuzet.shared.cli", "central", "--config", str(path), "run"]
    command += ["--role", "ingest", "--instance", "1", "--metrics-port", str(metrics_port)]
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    device = None
    try:
        healthz = f"http://127.0.0.1:{metrics_port}/healthz"
        wait_for(lambda: _status(healthz) == 200, 60, "the worker healthy")
        assert json.loads(_get(healthz)[1])["ingest"]["mqtt"]  # connected and subscribed
        device = Link(MqttSection(url=mosquitto.url, protocol="5"), "cam-1-test").start()
        event_id = new_id()
        device.publish(up("cam-1", "event"), messages.encode(event("cam-1", event_id, 0))).wait_for_publish(5)
        central = make_central(tmp_path, mosquitto.url, store={"url": postgres_url})
        wait_for(lambda: rows(central, "SELECT event_id FROM events"), 30, "the event in PostgreSQL")
        assert rows(central, "SELECT event_id FROM events") == [{"event_id": event_id}]
        assert count(central, "routing_inbox") == 1  # kept for the routing leader
        central.close()
    finally:
        if device is not None:
            device.stop()
        worker.terminate()
        status = worker.wait(timeout=60)
        log.close()
    assert status == 0, (tmp_path / "worker.log").read_text()
    assert "central-pavlodar-ingest-1" in (tmp_path / "worker.log").read_text()


def _status(url: str) -> int | None:
    """The HTTP status, or None while nothing answers."""
    try:
        return _get(url)[0]
    except OSError:
        return None
