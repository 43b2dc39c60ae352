"""Dispatching as an operator does it, in a real headless Chromium against central running for real
(Mosquitto, ingest, routing, waitress) with real badge agents: from the unit board, from the map, a diversion
and an intercept with its confirmation, each in English, Russian and Kazakh (what the operator reads asserted in
that language). Screenshots go to artifacts/screenshots (``ru-``/``kk-`` before the name of the translated runs)."""

from __future__ import annotations

import re
import time

import pytest
from support.browser import SCREENSHOTS, click, confirmation, log_in, wait_until
from support.patrol import Camera, inbox_has, point, start_badge, wait_for
from support.web import LiveCentral

pytestmark = pytest.mark.browser

# What the operator reads, by language: written out here, not taken from the catalogues under test.
SAYS = {
    "en": {
        "available": "Available",
        "sent": "Sent, not yet acknowledged",
        "acknowledged": "Acknowledged",
        "nearest": "nearest",
        "metres": "195 m",
        "old": "Medium Crowd",
        "new": "Critical PANIC",
        "panic": "PANIC",
        "intercept": "700 m: 2 (badge-near, badge-mid)",
        "running": "Running",
        "person": "person",
        "scale": r"\d+ k?m",
        "zoom_in": "Zoom in",
        "routing": "routing",
    },
    "ru": {
        "available": "Свободен",
        "sent": "Направлен, ещё не подтвердил",
        "acknowledged": "Принято",
        "nearest": "ближайший",
        "metres": "195 м",
        "old": "Средняя Скопление людей",
        "new": "Критическая ТРЕВОГА",
        "panic": "ТРЕВОГА",
        "intercept": "Нарядов в радиусе 700 м: 2 (badge-near, badge-mid)",
        "running": "Бег",
        "person": "человек",
        "scale": r"\d+ к?м",
        "zoom_in": "Приблизить",
        "routing": "маршрутизация",
    },
    "kk": {
        "available": "Бос",
        "sent": "Жіберілді, әлі растамады",
        "acknowledged": "Қабылданды",
        "nearest": "ең жақын",
        "metres": "195 м",
        "old": "Орташа Адамдар тобы",
        "new": "Өте жоғары ДАБЫЛ",
        "panic": "ДАБЫЛ",
        "intercept": "700 м радиустағы жасақтар: 2 (badge-near, badge-mid)",
        "running": "Жүгіру",
        "person": "адам",
        "scale": r"\d+ к?м",
        "zoom_in": "Жақындату",
        "routing": "бағыттау",
    },
}
LANGUAGES = pytest.mark.parametrize("scene", list(SAYS), indirect=True)


def shot(driver, scene, name: str) -> None:
    language = scene[0].central.config.site.language
    driver.save_screenshot(str(SCREENSHOTS / (name if language == "en" else f"{language}-{name}")))


@pytest.fixture
def scene(request, tmp_path, mosquitto):
    """Central under the confirm policy (nothing goes out by itself), a camera and three badges around it; its
    page in the test's language (``request.param``: en, ru or kk; English unless parametrized)."""
    language = getattr(request, "param", "en")
    live = LiveCentral(
        tmp_path,
        mosquitto.url,
        routing={"policy": "confirm", "ack_timeout_s": 60},
        site={"language": language},
    )
    camera = Camera(mosquitto.url)
    agents = {}
    for name, at in (("badge-near", point(150)), ("badge-mid", point(0, 600)), ("badge-far", point(-1200))):
        agents[name] = start_badge(tmp_path, mosquitto.url, name, at)
        wait_for(
            lambda n=name: (u := live.routing.units.get(n)) and u.lat is not None, what=f"{name} on the air"
        )
    yield live, camera, agents
    for agent in agents.values():
        agent.stop()
    camera.stop()
    live.stop()


def stored(live, event_id: str) -> str:
    wait_for(
        lambda: live.central.db()["events"].count_where("event_id = ?", [event_id]), what="the event stored"
    )
    return event_id


def text(driver, css: str) -> str:
    """The element's text, read in one step: the live board may redraw between a find and a read."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css
    )


def board_status(driver, device: str) -> str:
    return text(driver, f"#unit-{device} .unit-status")


@LANGUAGES
def test_operator_sends_the_nearest_unit_from_the_unit_board(scene, browser):
    from selenium.webdriver.common.by import By

    live, camera, agents = scene
    says = SAYS[live.central.config.site.language]
    event_id = camera.event(point(0), severity="high")
    wait_for(lambda: live.routing.dispatches(state="proposed"), what="routing's proposal")
    log_in(browser, live.web.url, "operator")
    browser.get(f"{live.web.url}/units?event={event_id}")
    wait_until(
        browser,
        lambda d: d.find_element(By.ID, "board-body").get_attribute("data-loaded") == "1",
        "the board",
    )
    wait_until(
        browser,
        lambda d: says["nearest"] in text(d, "#unit-badge-near").lower(),
        "the nearest unit marked",
    )
    order = browser.execute_script(
        "return [...document.querySelectorAll('#board-body tr')].map(r => r.dataset.unit)"
    )
    assert order == ["badge-near", "badge-mid", "badge-far"]
    assert board_status(browser, "badge-near") == says["available"]
    assert text(browser, "#unit-badge-near td.distance") == says["metres"]
    shot(browser, scene, "units-01-board.png")

    click(browser, "#send-nearest", "the send-nearest button")
    wait_until(browser, lambda d: board_status(d, "badge-near") == says["sent"], "the unit sent")
    [item] = wait_for(inbox_has(agents["badge-near"]), what="the dispatch at the badge")
    assert item.dispatch.event_id == event_id
    agents["badge-near"].acknowledge()
    wait_until(
        browser, lambda d: board_status(d, "badge-near") == says["acknowledged"], "the acknowledgement, live"
    )
    assert text(browser, "#unit-badge-near td.since").startswith("0:0")  # a fresh status, timed live
    assert event_id in browser.execute_script("return document.querySelector('#unit-badge-near').innerHTML")

    # A chosen unit, in one click on its row.
    second = camera.event(point(0, 550), severity="medium", event_type="crowd")
    browser.get(f"{live.web.url}/units?event={second}")
    click(browser, "#unit-badge-far button.send", "badge-far's send button")
    wait_until(browser, lambda d: board_status(d, "badge-far") == says["sent"], "badge-far sent")
    assert [d["unit"] for d in live.routing.dispatches(state="sent", event_id=second)] == ["badge-far"]
    shot(browser, scene, "units-02-sent.png")


def test_operator_sends_the_nearest_unit_from_the_queue_in_one_click(scene, browser):
    from selenium.webdriver.common.by import By

    live, camera, agents = scene
    event_id = camera.event(point(0, 500), severity="high")
    log_in(browser, live.web.url, "operator")
    wait_until(browser, lambda d: d.find_elements(By.ID, f"ev-{event_id}"), "the event in the queue")
    click(browser, f"#ev-{event_id} button.send-nearest", "the queue's send-nearest button")
    [item] = wait_for(inbox_has(agents["badge-mid"]), what="the dispatch at the nearest badge")
    assert item.dispatch.event_id == event_id
    wait_until(
        browser,
        lambda d: "badge-mid" in text(d, f"#ev-{event_id}"),
        "the patrol in the row",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, f"#ev-{event_id} button.send-nearest")  # dispatched now
    browser.save_screenshot(str(SCREENSHOTS / "units-03-queue.png"))


@LANGUAGES
def test_operator_dispatches_from_the_maps_popup_which_shows_the_snapshot(scene, browser):
    from selenium.webdriver.common.by import By
    from support.web import Camera as SnapshotCamera
    from support.web import jpeg

    live, camera, agents = scene
    says = SAYS[live.central.config.site.language]
    event_id = camera.event(
        point(-900), severity="critical", event_type="running"
    )  # 300 m from badge-far: apart on the map
    snapshots = SnapshotCamera(live.central.config.mqtt.url, device=camera.device)  # one that sends snapshots
    snapshots.snapshot(event_id, jpeg(), 320, 240)
    snapshots.stop()

    def snapshot_stored():  # the event itself may not be stored yet either
        row = (
            live.central.db()
            .execute("select snapshot_sha256 from events where event_id = ?", [event_id])
            .fetchone()
        )
        return row and row[0]

    wait_for(snapshot_stored, what="the snapshot stored")
    log_in(browser, live.web.url, "operator")
    browser.get(live.web.url + "/map")
    wait_until(browser, lambda d: d.find_element(By.ID, "map").get_attribute("data-loaded") == "1", "the map")
    # the markers are drawn after the data arrives and redrawn by live updates: wait for the one, click it again
    # if a redraw replaced it
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".mk-event")) == 1, "one event marker")
    click(browser, ".mk-event", "the event marker")
    popup = wait_until(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f'.event-popup[data-event="{event_id}"]'),
        "the popup",
    )
    wait_until(
        browser,
        lambda d: (
            d.execute_script(
                "const i = document.querySelector('.popup-snapshot'); return i && i.complete && i.naturalWidth"
            )
            == 320
        ),
        "the snapshot in the popup",
    )
    # A live update of the event (here: the operator acknowledges it) leaves its marker and open popup as they are.
    # A clustered marker told it "moved" to where it was is taken out and put back: its popup closed and reopened,
    # blank for a moment, on every update (the map's handler runs before the one added here).
    browser.execute_script(
        """const id = arguments[0];
        const popup = document.querySelector(`.event-popup[data-event="${id}"]`);
        const dot = document.querySelector('.mk-event');
        window.kept = { popup, dot, icon: dot.closest('.leaflet-marker-icon'), updates: 0 };
        Kuzet.on('event', (e) => { if (e.event_id === id) window.kept.updates++; });
        Kuzet.api('POST', `/api/v1/events/${encodeURIComponent(id)}/ack`, {});""",
        event_id,
    )
    wait_until(
        browser, lambda d: d.execute_script("return window.kept.updates") >= 1, "the acknowledgement, live"
    )
    assert browser.execute_script(
        "const k = window.kept; return [k.popup.isConnected, k.dot.isConnected, k.icon.isConnected]"
    ) == [True, True, True]
    popup = browser.find_element(By.CSS_SELECTOR, f'.event-popup[data-event="{event_id}"]')
    # The event, what the camera saw, Leaflet's own buttons and scale: in the reader's language.
    assert says["running"] in popup.text and says["person"] in popup.text
    assert (
        browser.find_element(By.CSS_SELECTOR, ".leaflet-control-zoom-in").get_attribute("title")
        == says["zoom_in"]
    )
    assert re.fullmatch(says["scale"], text(browser, ".leaflet-control-scale-line"))
    shot(browser, scene, "units-04-map-popup.png")
    popup.find_element(By.CSS_SELECTOR, "button.map-send-nearest").click()
    [item] = wait_for(inbox_has(agents["badge-far"]), what="the dispatch at the nearest badge")
    assert item.dispatch.event_id == event_id and item.dispatch.mode == "nearest"
    wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "path.dispatch-line"),
        "the dispatch line on the map",
    )
    shot(browser, scene, "units-05-map-sent.png")


@LANGUAGES
def test_operator_diverts_a_busy_unit_to_a_more_urgent_incident_after_confirming(scene, browser):
    from selenium.webdriver.common.by import By

    live, camera, agents = scene
    says = SAYS[live.central.config.site.language]
    crowd = stored(live, camera.event(point(100), event_type="crowd", severity="medium"))
    # Routing proposes the nearest unit on its own time; the operator's dispatch then supersedes it (were the
    # operator first, routing would leave the event alone and there would be no proposal to cancel).
    wait_for(lambda: live.routing.dispatches(event_id=crowd), what="routing's proposal for the crowd")
    live.parts.operations.assign_unit(crowd, "badge-near", "operator")
    wait_for(inbox_has(agents["badge-near"]), what="the crowd dispatch at badge-near")
    agents["badge-near"].acknowledge()
    wait_for(
        lambda: live.routing.dispatches(state="acknowledged", event_id=crowd), what="badge-near on the crowd"
    )
    # Every other unit is busy too, so the panic has nobody but a diverted unit.
    for name in ("badge-mid", "badge-far"):
        other = stored(live, camera.event(point(-5000), event_type="loitering", severity="high"))
        live.parts.operations.assign_unit(other, name, "operator")
    panic = stored(live, camera.event(point(180), event_type="panic", severity="critical"))

    log_in(browser, live.web.url, "operator")
    browser.get(f"{live.web.url}/units?event={panic}")
    wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#unit-badge-near button.divert"),
        "the divert button",
    )
    # Every unit is on a less urgent event than the panic: each may be diverted.
    assert len(browser.find_elements(By.CSS_SELECTOR, "button.divert")) == 3
    assert browser.find_element(By.ID, "send-nearest").get_attribute("disabled")  # nobody is free
    browser.find_element(By.CSS_SELECTOR, "#unit-badge-near button.divert").click()
    question = confirmation(browser)
    assert "badge-near" in question.text and says["old"] in question.text and says["new"] in question.text
    question.dismiss()  # changed its mind: nothing happens
    assert live.routing.dispatches(state="acknowledged", event_id=crowd)
    browser.find_element(By.CSS_SELECTOR, "#unit-badge-near button.divert").click()
    confirmation(browser).accept()

    wait_until(browser, lambda d: board_status(d, "badge-near") == says["sent"], "badge-near sent on")
    wait_until(
        browser,
        lambda d: says["panic"] in text(d, "#unit-badge-near"),
        "the panic as its incident",
    )
    states = {(d["mode"], d["state"]) for d in live.routing.dispatches(event_id=crowd)}
    assert states == {("nearest", "cancelled"), ("manual", "diverted")}  # routing's proposal, superseded
    assert crowd in live.routing.waiting()
    wait_for(inbox_has(agents["badge-near"]), what="the badge's inbox")
    assert {i.state for i in agents["badge-near"].inbox.items()} >= {"cancelled"}
    shot(browser, scene, "units-06-diverted.png")


@LANGUAGES
def test_intercept_asks_to_confirm_how_many_units_it_sends(scene, browser):
    from selenium.webdriver.common.by import By

    live, camera, agents = scene
    says = SAYS[live.central.config.site.language]
    event_id = stored(live, camera.event(point(0), event_type="running", severity="high"))
    log_in(browser, live.web.url, "operator")
    browser.get(f"{live.web.url}/events/{event_id}")
    radius = wait_until(browser, lambda d: d.find_element(By.ID, "intercept-radius"), "the intercept form")
    # Routing's own proposal names its author in words, not by its actor name "routing".
    wait_until(browser, lambda d: says["routing"] in text(d, "#dispatch-list"), "routing's proposal")
    assert says["routing"] == "routing" or "routing" not in text(browser, "#dispatch-list")
    radius.clear()
    radius.send_keys("700")  # badge-near (150 m) and badge-mid (600 m), not badge-far (1.2 km)
    browser.find_element(By.ID, "intercept").click()
    question = confirmation(browser)
    assert says["intercept"] in question.text
    question.dismiss()
    intercepts = lambda: [d for d in live.routing.dispatches(event_id=event_id) if d["mode"] == "intercept"]  # noqa: E731
    assert not intercepts()  # nothing sent without the confirmation

    browser.find_element(By.ID, "intercept").click()
    confirmation(browser).accept()
    wait_for(lambda: len(intercepts()) == 2, what="two intercept dispatches")
    assert sorted(d["unit"] for d in intercepts()) == ["badge-mid", "badge-near"]
    wait_for(inbox_has(agents["badge-mid"]), what="the intercept at badge-mid")
    assert not agents["badge-far"].inbox.items()
    shot(browser, scene, "units-07-intercept.png")


def test_the_map_shows_camera_views_patrol_colours_clustered_events_and_labels_apart(scene, browser):
    from selenium.webdriver.common.by import By

    from kuzet.central.store import registry

    live, camera, agents = scene
    db = live.central.db()
    for n in range(4):  # four cameras on one mast: their labels would sit on top of one another
        where = point(600, 5 * n)
        registration = registry.Registration(
            device_id=f"cam-mast-{n}",
            kind="camera",
            name=f"Mast camera {n}",
            site="pavlodar",
            lat=where[0],
            lon=where[1],
            heading_deg=90.0 * n,
            fov_deg=60.0,
            view_m=120.0,
        )
        registry.register(db, registration, actor="test")
    crowd = [
        stored(live, camera.event(point(-400 + 3 * i, 3 * i), event_type="crowd", severity="low"))
        for i in range(12)
    ]
    sent = stored(live, camera.event(point(50), severity="critical", event_type="running"))
    live.parts.operations.send_nearest(sent, "operator")

    log_in(browser, live.web.url, "operator")
    browser.get(live.web.url + "/map")
    wait_until(browser, lambda d: d.find_element(By.ID, "map").get_attribute("data-loaded") == "1", "the map")
    wait_until(
        browser,
        lambda d: d.find_element(By.ID, "map").get_attribute("data-decluttered") == "1",
        "labels laid out",
    )

    assert len(browser.find_elements(By.CSS_SELECTOR, "path.camera-view")) == 4
    # The twelve crowded events are one cluster saying 12; the critical one far from them stands alone.
    clusters = browser.find_elements(By.CSS_SELECTOR, ".event-cluster")
    assert [c.text for c in clusters] == ["12"] and "sev-low" in clusters[0].get_attribute("class")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".mk-event")) == 1
    assert len(crowd) == 12
    # Patrols by status: the one sent is amber ("sent"), the others available.
    wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".leaflet-marker-icon .mk-unit.st-sent"),
        "the sent patrol's colour",
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, ".leaflet-marker-icon .mk-unit.st-available")) == 2
    # No two visible labels overlap, and the crowded ones were thinned out rather than stacked.
    overlapping = browser.execute_script(
        """const boxes = [...document.querySelectorAll('.leaflet-tooltip.map-label:not(.label-hidden)')]
             .map(e => e.getBoundingClientRect());
           let n = 0;
           for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
             const a = boxes[i], b = boxes[j];
             if (a.left < b.right && a.right > b.left && a.top < b.bottom && a.bottom > b.top) n++;
           }
           return n;"""
    )
    assert overlapping == 0
    assert browser.find_elements(By.CSS_SELECTOR, ".leaflet-tooltip.map-label.label-hidden")
    browser.save_screenshot(str(SCREENSHOTS / "units-08-map.png"))
    # Zoomed in, the cluster opens into its events.
    for _ in range(4):  # each click zooms to the cluster's events until they stand apart
        if len(browser.find_elements(By.CSS_SELECTOR, ".mk-event")) > 1:
            break
        click(browser, ".event-cluster", "the cluster")
        time.sleep(1)  # the zoom animation
    assert len(browser.find_elements(By.CSS_SELECTOR, ".mk-event")) > 1
    browser.save_screenshot(str(SCREENSHOTS / "units-09-map-zoomed.png"))
