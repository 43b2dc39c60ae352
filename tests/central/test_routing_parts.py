"""Routing's parts without a broker: the planner (pure), the repository (a SQLite file in tmp_path), and the
one door (central.operations) standing dispatches down in the same transaction as closing or revoking.
Messages to badges are caught by a fake outbound link."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kuzet.central.alerts import say
from kuzet.central.config import CentralConfig
from kuzet.central.context import Central
from kuzet.central.operations import NotRunning, Operations
from kuzet.central.routing import planner
from kuzet.central.routing.config import RoutingSection
from kuzet.central.routing.geo import offset
from kuzet.central.routing.planner import Incident
from kuzet.central.routing.repository import SqliteRoutingRepository
from kuzet.central.routing.service import RoutingService
from kuzet.central.routing.units import Unit
from kuzet.central.routing.worker import Deadlines, Settle
from kuzet.central.store import events, portable, registry, workflow
from kuzet.shared import ids, timeutil
from kuzet.shared.messages import Event, Location, Status

HOME = (52.2873, 76.9674)
SITE = "pavlodar"


def unit(device: str, north_m: float, **fields) -> Unit:
    lat, lon = offset(*HOME, north_m, 0.0)
    values = dict(
        device_id=device,
        site=SITE,
        lat=lat,
        lon=lon,
        duty="available",
        online=True,
        position_at=timeutil.now_wire(),
    )
    return Unit(**{**values, **fields})


def incident(**fields) -> Incident:
    return Incident(**{"event_id": "e1", "site": SITE, "event_type": "loitering", "severity": "high",
                       "lat": HOME[0], "lon": HOME[1], **fields})  # fmt: skip


def at(device: str, north_m: float, duty: str = "available") -> Location:
    """A badge's position ``north_m`` metres north of HOME."""
    position = dict(zip(("lat", "lon"), offset(*HOME, north_m, 0), strict=True))
    return Location(device=device, position=position, fix="gps", duty=duty)


def camera_event(event_type: str = "loitering", severity: str = "high") -> Event:
    """An event at HOME; by default one a patrol is sent to."""
    return Event(device="cam-1", event_id=ids.new_id(), seq=0, state="open", event_type=event_type,
                 severity=severity, label="person", score=0.9, started_at=timeutil.utc_now(),
                 location={"lat": HOME[0], "lon": HOME[1]})  # fmt: skip


def stored(central, event: Event) -> Event:
    """``event`` stored as ingest stores it, before routing sees it."""
    with central.db().conn:
        events.apply(central.db().conn, [events.Received(event, SITE, timeutil.now_wire())])
    return event


def record_saves(service, monkeypatch) -> list[list[str]]:
    """The units of each ``save_units`` call, by device id."""
    saves: list[list[str]] = []
    save_units = service.repository.save_units
    monkeypatch.setattr(
        service.repository,
        "save_units",
        lambda units: saves.append(sorted(u.device_id for u in units)) or save_units(units),
    )
    return saves


# --- planner ---------------------------------------------------------------------------------------------


def test_the_nearest_free_fresh_capable_unit_comes_first():
    config = RoutingSection(rules={"crowd": {"capabilities": ["vehicle"]}})
    units = [
        unit("far", 900),
        unit("near", 100),
        unit("busy", 10, current_dispatch="d0"),
        unit("stale", 20, position_at=timeutil.to_wire(timeutil.utc_now() - timedelta(hours=1))),
        unit("off", 30, online=False),
        unit("van", 500, capabilities=["vehicle"]),
    ]
    found = planner.candidates(config, units, set(), incident())
    assert [c.unit.device_id for c in found] == ["near", "van", "far"]
    assert found[0].travel_m == pytest.approx(found[0].straight_m * config.detour_factor)
    assert [c.unit.device_id for c in planner.candidates(config, units, {"near"}, incident())][0] == "van"
    crowd = planner.candidates(config, units, set(), incident(event_type="crowd"))
    assert [c.unit.device_id for c in crowd] == ["van"]


def test_tried_units_are_skipped_unless_asked_and_the_source_never_goes():
    config = RoutingSection()
    units = [unit("near", 100), unit("far", 900)]
    tried = incident(tried={"near"}, source_device="far")
    assert planner.candidates(config, units, set(), tried) == []
    assert [c.unit.device_id for c in planner.candidates(config, units, set(), tried, skip_tried=False)] == [
        "near"
    ]


@pytest.mark.parametrize(
    ("attempt", "found", "policy", "action"),
    [(4, True, None, "give_up"), (1, False, None, "wait"), (1, True, None, "send"), (2, True, "confirm", "propose")],
)  # fmt: skip
def test_the_plan(attempt, found, policy, action):
    config = RoutingSection(max_attempts=3)
    candidates = planner.candidates(config, [unit("near", 100)], set(), incident()) if found else []
    assert planner.plan(config, incident(), attempt, candidates, policy).action == action


def test_intercept_takes_every_unit_in_the_radius_and_waiting_is_most_severe_first():
    found = planner.candidates(
        RoutingSection(), [unit("a", 100), unit("b", 1400), unit("c", 3000)], set(), incident()
    )
    assert [c.unit.device_id for c in planner.intercept(found, 1500)] == ["a", "b"]
    low, high = incident(severity="medium", since=1.0), incident(severity="critical", since=2.0)
    assert planner.waiting_order([low, high]) == [high, low]
    assert planner.needs_patrol(RoutingSection(), "loitering", "high")
    assert not planner.needs_patrol(RoutingSection(), "loitering", "low")


# --- repository ------------------------------------------------------------------------------------------


@pytest.fixture
def central(tmp_path):
    config = CentralConfig.model_validate({"mqtt": {"url": "mqtt://127.0.0.1:1"}, "central": {"site": SITE}})
    central = Central(config=config, data_dir=tmp_path / "central")
    yield central
    central.close()


def test_the_repository_keeps_dispatches_their_log_and_units(central):
    repository = SqliteRoutingRepository(central.db)
    row = {"dispatch_id": "d1", "event_id": "e1", "unit": "b1", "mode": "nearest", "state": "sent",
           "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z", "attempt": 1,
           "deadline_at": "2026-01-01T00:01:00.000Z"}  # fmt: skip
    repository.insert_dispatch(row)
    repository.update_dispatch("d1", {"state": "acknowledged", "not_a_column": 1})
    repository.log_state("d1", "acknowledged", "2026-01-01T00:00:05.000Z", "b1", "")
    assert repository.get_dispatch("d1")["state"] == "acknowledged"
    assert [r["dispatch_id"] for r in repository.find_dispatches(states=("acknowledged",), unit="b1")] == [
        "d1"
    ]
    assert repository.find_dispatches(event_id="e1", not_id="d1") == []
    repository.log_state(
        "d1", "confirmed", "2026-01-01T00:00:06.000Z", "system", say("note_sent_by_policy", seconds=30)
    )
    assert repository.history("d1") == [
        {"state": "acknowledged", "at": "2026-01-01T00:00:05.000Z", "by": "b1", "detail": ""}
        | {"detail_key": None, "detail_params": {}},
        {"state": "confirmed", "at": "2026-01-01T00:00:06.000Z", "by": "system"}
        | {"detail": "nobody confirmed within 30 s; sent by policy", "detail_key": "note_sent_by_policy"}
        | {"detail_params": {"seconds": 30}},  # said in the reader's language when shown
    ]
    assert repository.routed_or_closed("e1") and repository.units_sent_to("e1") == ["b1"]
    assert [r["dispatch_id"] for r in repository.active()] == ["d1"]
    assert repository.deadlines(("sent",)) == []
    repository.save_unit(unit("b1", 100, capabilities=["medic"]))
    [loaded] = repository.load_units()
    assert loaded.device_id == "b1" and loaded.capabilities == ["medic"] and loaded.online is True


# --- the one door ----------------------------------------------------------------------------------------


@pytest.fixture
def routed(central):
    """A routing service whose worker thread is not started: each step is applied here, synchronously."""
    sent: list[str] = []
    central.outbound.connect(lambda topic, payload, retain=False: sent.append(topic))
    service = RoutingService(central)
    operations = Operations(central, service)

    def apply(message) -> None:
        with service.worker.transaction():
            service._apply(SITE, message)

    apply(Location(device="badge-1", position=dict(zip(("lat", "lon"), offset(*HOME, 100, 0), strict=True)),
                   fix="gps", duty="available"))  # fmt: skip
    event = stored(central, camera_event())
    apply(event)
    [dispatch] = service.dispatches(event_id=event.event_id)
    assert dispatch["state"] == "sent" and service.units.get("badge-1").current_dispatch
    return central, operations, event.event_id, dispatch["dispatch_id"], sent


def test_closing_through_the_door_cancels_the_dispatch_in_the_same_transaction(routed):
    central, operations, event_id, dispatch_id, sent = routed
    closed = operations.close_event(event_id, "supervisor", "Handled")
    assert closed["status"] == "closed"
    row = operations.routing.dispatch(dispatch_id)
    assert row["state"] == "cancelled" and row["reason"] == "event closed by supervisor: Handled"
    assert operations.routing.units.get("badge-1").current_dispatch is None
    assert sent[-1].endswith("/badge-1/down/command")  # the badge is told, after the commit
    with pytest.raises(workflow.WorkflowError):
        operations.close_event(event_id, "supervisor", "again")


def test_revoking_through_the_door_stands_the_unit_down(routed):
    central, operations, event_id, dispatch_id, sent = routed
    registry.register(central.db(), registry.Registration(device_id="badge-1", kind="badge", site=SITE), "t")
    device = operations.revoke_device("badge-1", "tech", "lost")
    assert device["revoked_at"]
    assert operations.routing.dispatch(dispatch_id)["state"] == "cancelled"
    assert operations.routing.waiting() == [event_id]  # nobody else on duty: the event waits
    assert operations.revoke_device("nobody", "tech") is None


def test_a_closing_made_while_routing_was_not_running_is_caught_up_at_start(routed):
    central, operations, event_id, dispatch_id, sent = routed
    workflow.close(central.db(), event_id, "supervisor", "by a script")  # behind the door: only at start
    assert operations.routing.dispatch(dispatch_id)["state"] == "sent"
    restarted = RoutingService(central)
    with restarted.worker.transaction():
        restarted._catch_up()
    row = restarted.dispatch(dispatch_id)
    assert row["state"] == "cancelled" and row["reason"] == "the event was closed: by a script"


def test_without_routing_the_door_still_closes_and_dispatching_is_refused(central):
    operations = Operations(central)
    with pytest.raises(NotRunning):
        operations.confirm_dispatch("d1", "operator")
    with pytest.raises(workflow.NotFound):
        operations.close_event("nope", "operator", "note")


def test_a_free_unit_reporting_routes_again_only_the_waiting_incidents_it_could_take(central, monkeypatch):
    """An event waits while no free unit is in range. Units far away reporting their positions (1,500 badges
    every 5 s in a city) route nothing again; the moment one comes within range, it is sent."""
    service = RoutingService(central)

    def apply(message) -> None:
        with service.worker.transaction():
            service._apply(SITE, message)

    far = service.config.max_distance_m / service.config.detour_factor + 5_000  # out of range
    for n in range(20):
        apply(at(f"badge-{n}", far + n))
    event = stored(central, camera_event())
    apply(event)
    assert service.waiting() == [event.event_id]

    routed = []
    route = service._route
    monkeypatch.setattr(
        service, "_route", lambda incident, *a, **k: routed.append(incident) or route(incident, *a, **k)
    )
    for n in range(20):  # every far unit reports again: still out of range
        apply(at(f"badge-{n}", far + n + 10))
    assert routed == [] and service.waiting() == [event.event_id]

    apply(at("badge-7", 300))  # one comes into range
    assert [incident.event_id for incident in routed] == [event.event_id]
    [dispatch] = service.dispatches(event_id=event.event_id)
    assert dispatch["unit"] == "badge-7" and service.waiting() == []


def test_choosing_the_nearest_copies_the_unit_it_picks_not_every_unit(central, monkeypatch):
    """Routing chooses among the live units under their lock; only the pick is copied out (at 1,500 badges,
    copying every unit for every route was most of the routing leader's time), and that copy is routing's own
    no longer: changing it changes nothing routing holds."""
    service = RoutingService(central)
    for n in range(200):
        position = dict(zip(("lat", "lon"), offset(*HOME, 100.0 + n, 0), strict=True))
        with service.worker.transaction():
            service._apply(
                SITE, Location(device=f"badge-{n:03d}", position=position, fix="gps", duty="available")
            )
    copies = []
    copy = Unit.copy
    monkeypatch.setattr(Unit, "copy", lambda self: copies.append(self.device_id) or copy(self))
    [nearest] = service._candidates(incident(), limit=1)
    assert nearest.unit.device_id == "badge-000" and copies == ["badge-000"]
    nearest.unit.current_dispatch = "d-elsewhere"
    assert service.units.get("badge-000").current_dispatch is None


def test_a_run_of_badges_reports_is_saved_together_in_order_with_the_rest_of_the_batch(central, monkeypatch):
    """Positions and heartbeats change only their units: a run of them in the worker's batch is one save (each
    unit once, as it is after the run) and one live update per unit, not a round trip per report; what comes
    between runs (an event) is applied in its place, seeing the positions before it and not those after."""
    service = RoutingService(central)
    saves, shown = record_saves(service, monkeypatch), []
    monkeypatch.setattr(
        central.hub,
        "publish",
        lambda channel, data: shown.append(data["device_id"]) if channel == "unit" else None,
    )  # fmt: skip (what the page is shown, after the commit)

    event = stored(central, camera_event())
    heartbeat = Status(device="badge-b", kind="badge", software_version="1", uptime_s=5, duty="available")
    batch = [at("badge-a", 900), at("badge-b", 800), at("badge-a", 700), heartbeat, at("badge-b", 600)]
    batch += [event, at("badge-a", 50), at("badge-b", 40, duty="off_duty")]
    with service.worker.transaction():
        service._apply_batch([(SITE, message) for message in batch])

    assert saves == [
        ["badge-a", "badge-b"],
        ["badge-b"],
        ["badge-a", "badge-b"],
    ]  # the run, the route, the run
    assert shown[:2] == ["badge-a", "badge-b"]  # once each for the first run of five reports
    [dispatch] = service.dispatches(event_id=event.event_id)
    assert dispatch["unit"] == "badge-b"  # 600 m against 700: the positions before the event, not after
    rows = {u.device_id: u for u in SqliteRoutingRepository(central.db()).load_units()}
    assert rows["badge-a"].lat == pytest.approx(offset(*HOME, 50, 0)[0])
    assert rows["badge-b"].duty == "off_duty" and rows["badge-b"].current_dispatch == dispatch["dispatch_id"]


def test_events_routing_passes_over_cost_no_savepoint_and_do_not_split_a_run_of_reports(central, monkeypatch):
    """Most of a city's events send nobody, and every event's later states are already considered: routing
    decides both in memory, so they cost no savepoint (two round trips each on PostgreSQL, on routing's one
    thread) and the badges' reports around them are still saved together."""
    service = RoutingService(central)
    saves, savepoints = record_saves(service, monkeypatch), []
    transaction = portable.transaction
    monkeypatch.setattr(portable, "transaction", lambda conn: savepoints.append(1) or transaction(conn))

    quiet = camera_event("zone_enter", "low")
    assert not planner.needs_patrol(service.config, "zone_enter", "low")
    closed = quiet.model_copy(update={"id": ids.new_id(), "seq": 1, "state": "closed"})
    batch = [at("badge-a", 900), quiet, at("badge-b", 800), closed, at("badge-a", 700)]
    with service.worker.transaction():
        service._apply_batch([(SITE, message) for message in batch])
    assert saves == [["badge-a", "badge-b"]]  # one run, as if the events were not there
    assert len(savepoints) == 1  # the run's; none for the events
    assert service.dispatches(event_id=quiet.event_id) == [] and service.waiting() == []

    with service.worker.transaction():  # its later state alone: considered already
        service._apply(SITE, quiet.model_copy(update={"id": ids.new_id(), "seq": 2}))
    assert len(savepoints) == 1


def test_a_dispatch_leaves_at_its_own_commit_not_after_the_rest_of_the_batch(central, monkeypatch):
    """The worker commits after each event it routes: the badge is sent its dispatch before the reports queued
    behind the event are applied, and the inbox's rows are settled with the last of the batch."""
    service = RoutingService(central)
    order: list[tuple[str, object]] = []
    central.outbound.connect(
        lambda topic, payload, retain=False: order.append(("sent", topic.rsplit("/")[-1]))
    )
    save_units = service.repository.save_units
    monkeypatch.setattr(
        service.repository,
        "save_units",
        lambda units: order.append(("saved", sorted(u.device_id for u in units))) or save_units(units),
    )

    event = stored(central, camera_event())
    settle = Settle(lambda db: order.append(("settled", None)), lambda ok: None)
    work = [(SITE, message) for message in (at("badge-a", 100), event, at("badge-b", 200))]
    assert service.worker._apply_and_settle(work, [settle])
    assert order == [
        ("saved", ["badge-a"]),
        ("saved", ["badge-a"]),  # sent: busy
        ("sent", "dispatch"),  # committed and sent before what follows the event is applied
        ("saved", ["badge-b"]),
        ("settled", None),
    ]


def test_a_run_of_reports_that_fails_together_is_applied_one_by_one(central, monkeypatch):
    """One report the store refuses costs only itself: the run is tried again report by report."""
    service = RoutingService(central)

    save_units, tries = service.repository.save_units, []

    def refuse_badge_1(units):
        tries.append([u.device_id for u in units])
        if any(u.device_id == "badge-1" for u in units):
            raise RuntimeError("the store refused badge-1's row")
        save_units(units)

    monkeypatch.setattr(service.repository, "save_units", refuse_badge_1)
    reports = [Location(device=f"badge-{n}", position={"lat": HOME[0], "lon": HOME[1]}, fix="gps",
                        duty="available") for n in range(3)]  # fmt: skip
    with service.worker.transaction():
        service._apply_batch([(SITE, message) for message in reports])
    assert tries == [["badge-0", "badge-1", "badge-2"], ["badge-0"], ["badge-1"], ["badge-2"]]
    saved = SqliteRoutingRepository(central.db()).load_units()
    assert sorted(u.device_id for u in saved) == ["badge-0", "badge-2"]


def test_a_badges_deadline_waits_while_routing_is_behind_the_devices_and_a_proposals_does_not(monkeypatch):
    """A dispatch's acknowledgement deadline is held by how far behind routing applies what devices send (an
    answer the badge sent in time may still be in central's queues), at most ``MAX_HOLD_S``; an operator's
    confirmation deadline is not held; caught up, the held deadline falls due."""
    clock = [1000.0]
    monkeypatch.setattr("kuzet.central.routing.worker.time.monotonic", lambda: clock[0])
    deadlines = Deadlines()
    deadlines.set("sent", 60, on_device=True)
    deadlines.set("proposed", 60)
    clock[0] += 61
    assert sorted(deadlines.due()) == ["proposed", "sent"]
    deadlines.behind(30)  # routing applies badges' messages 30 s after they reached central
    assert deadlines.due() == ["proposed"]
    clock[0] += 30
    assert sorted(deadlines.due()) == ["proposed", "sent"]
    deadlines.behind(10_000)
    assert deadlines.behind_s == Deadlines.MAX_HOLD_S
    deadlines.behind(0)  # caught up
    deadlines.clear("proposed")
    assert deadlines.due() == ["sent"]


def test_routing_holds_a_badges_deadline_for_its_own_lag_and_expires_it_once_caught_up(central, monkeypatch):
    """Through the routing service: a sent dispatch past its deadline is not taken back while routing is told
    it is behind, and is once it has caught up."""
    clock = [1000.0]
    monkeypatch.setattr("kuzet.central.routing.worker.time.monotonic", lambda: clock[0])
    service = RoutingService(central)
    with service.worker.transaction():
        service._apply(SITE, Location(device="badge-1", position={"lat": HOME[0], "lon": HOME[1]}, fix="gps",
                                      duty="available"))  # fmt: skip
    event = stored(central, camera_event())
    with service.worker.transaction():
        service._apply(SITE, event)
    [dispatch] = service.dispatches(event_id=event.event_id)
    clock[0] += service.config.ack_timeout_s + 1  # the badge's time is up
    service.behind(45)
    assert service.worker.deadlines.due() == []
    service.behind(0)
    assert service.worker.deadlines.due() == [dispatch["dispatch_id"]]


def test_an_event_whose_rule_cannot_be_read_is_routed_nowhere_and_routing_goes_on(central, caplog):
    """Deciding whether an event needs a patrol happens before any savepoint (and to cut the worker's batch):
    a rule that cannot be read there is logged and the event routed nowhere, and the rest of the batch is
    applied; routing's thread does not stop."""
    service = RoutingService(central)
    service.config.rules = {"loitering": {"min_severity": "low"}}  # unvalidated: not a RuleSection
    event = camera_event()
    report = Location(
        device="badge-1", position={"lat": HOME[0], "lon": HOME[1]}, fix="gps", duty="available"
    )
    assert service.worker._apply_and_settle([(SITE, event), (SITE, report)], [])
    assert service.dispatches(event_id=event.event_id) == []
    assert service.units.get("badge-1") is not None  # the report after it applied
    assert "cannot tell whether loitering needs a patrol" in caplog.text
