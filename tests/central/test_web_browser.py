"""The page in a real headless Chromium (Debian's), against central running for real: Mosquitto, ingest,
waitress. An operator logs in, a camera's event arrives live over MQTT, the operator opens it and its clip
plays. Screenshots are kept in artifacts/screenshots/ for people to look at."""

from __future__ import annotations

import json
import time

import pytest
from support.browser import SCREENSHOTS, click, confirmation, log_in, wait_until
from support.web import Camera, LiveCentral, h264_clip, jpeg

from kuzet.central.auth import audit
from kuzet.shared import ids, messages, timeutil

pytestmark = pytest.mark.browser


@pytest.fixture
def camera(mosquitto, live):
    from kuzet.central.store import registry

    registry.register(
        live.central.db(),
        registry.Registration(
            device_id="cam-01",
            kind="camera",
            name="Toraigyrov St / Lenin",
            site="pavlodar",
            lat=52.2869,
            lon=76.9648,
        ),
        actor="test",
    )
    device = Camera(mosquitto.url)
    yield device
    device.stop()


def test_operator_sees_a_new_event_live_opens_it_and_plays_its_clip(live, camera, browser, tmp_path):
    from selenium.webdriver.common.by import By

    # Some history so that the queue and its counters are not empty.
    for n, (kind, severity, zone) in enumerate([("crowd", "medium", "square"), ("running", "low", "gate")]):
        camera.event(ids.new_id(), event_type=kind, severity=severity, zone=zone, label=f"person ×{n + 2}")
    log_in(browser, live.web.url, "operator")
    wait_until(
        browser,
        lambda d: d.find_element(By.ID, "queue-body").get_attribute("data-loaded") == "1",
        "the queue",
    )
    wait_until(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "#live .label").text == "live",
        "the live indicator",
    )
    rows_before = len(browser.find_elements(By.CSS_SELECTOR, "#queue-body tr"))
    assert rows_before == 2
    url_before = browser.current_url

    event_id = ids.new_id()
    clip = h264_clip(tmp_path / "clip.mp4")
    camera.event(event_id, severity="critical", label="person", zone="platform")
    camera.snapshot(event_id, jpeg(), 320, 240)
    clip_sha = camera.clip(event_id, clip, "video/mp4")

    row = wait_until(
        browser, lambda d: d.find_elements(By.ID, f"ev-{event_id}"), "the new event in the queue"
    )[0]
    assert browser.current_url == url_before  # arrived without a reload
    assert "critical" in row.text.lower() and "platform" in row.text and "fresh" in row.get_attribute("class")
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#toasts .toast"), "the toast")
    wait_until(browser, lambda d: d.find_element(By.ID, "c-critical").text == "1", "the critical counter")
    browser.save_screenshot(str(SCREENSHOTS / "02-queue-new-event.png"))

    # The clip arrives in chunks; open the event once central has verified it.
    media = live.central.db()["media"]
    deadline = time.monotonic() + 20
    while not media.count_where("sha256 = ?", [clip_sha]) and time.monotonic() < deadline:
        time.sleep(0.1)
    row.click()
    wait_until(browser, lambda d: f"/events/{event_id}" in d.current_url, "the event page")
    video = wait_until(browser, lambda d: d.find_elements(By.ID, "clip"), "the clip player")[0]
    # The content type is the <source>'s (a <video> ignores type=): the browser may skip what it cannot play.
    assert video.find_element(By.TAG_NAME, "source").get_attribute("type") == "video/mp4"
    browser.execute_script("arguments[0].play()", video)
    wait_until(
        browser,
        lambda d: d.execute_script(
            "return arguments[0].readyState >= 2 && arguments[0].currentTime > 0.5", video
        ),
        "the clip playing",
    )
    assert browser.execute_script("return arguments[0].error", video) is None
    # The whole H.264 clip, its length known from the fragmented MP4, served as video/mp4.
    duration, width, served_as = browser.execute_script(
        "const v = arguments[0];"
        "const r = await fetch(v.currentSrc, {headers: {Range: 'bytes=1-1'}});"  # a range: not a new view
        "return [v.duration, v.videoWidth, r.headers.get('content-type')];",
        video,
    )
    assert (width, served_as) == (320, "video/mp4") and duration == pytest.approx(3.0, abs=0.15)
    wait_until(
        browser,
        lambda d: d.execute_script(
            "const i = document.getElementById('snapshot'); return i && i.complete && i.naturalWidth === 320"
        ),
        "the snapshot",
    )
    wait_until(
        browser,
        lambda d: d.find_elements(
            By.CSS_SELECTOR, "#minimap .leaflet-marker-pane, #minimap path.leaflet-interactive"
        ),
        "the event on the map",
    )
    browser.save_screenshot(str(SCREENSHOTS / "03-event-detail-clip-playing.png"))
    browser.set_window_size(1440, 1700)
    browser.save_screenshot(str(SCREENSHOTS / "03b-event-detail-whole.png"))
    browser.set_window_size(1440, 900)

    # Acknowledge, then close with a note, on the page.
    browser.find_element(By.ID, "ack").click()
    wait_until(
        browser, lambda d: d.find_element(By.ID, "event-status").text == "Acknowledged", "acknowledged"
    )
    browser.find_element(By.ID, "note").send_keys("Patrol 12 spoke to the person; left the platform.")
    browser.find_element(By.ID, "close").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "event-status").text == "Closed", "closed")

    # The queue shows open events by default; the closed one is back under "all".
    from selenium.webdriver.support.ui import Select

    browser.get(live.web.url + "/")
    wait_until(
        browser,
        lambda d: d.find_element(By.ID, "queue-body").get_attribute("data-loaded") == "1",
        "the queue",
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#queue-body tr")) == 2
    assert not browser.find_elements(By.ID, f"ev-{event_id}")
    Select(browser.find_element(By.NAME, "status")).select_by_value("")
    wait_until(browser, lambda d: d.find_elements(By.ID, f"ev-{event_id}"), "the closed event under all")
    assert "status=&" in browser.current_url or browser.current_url.endswith("status=")

    db = live.central.db()
    actions = [(e["actor"], e["action"]) for e in audit.entries(db, target=f"event:{event_id}")]
    assert ("operator", "media.view") in actions and ("operator", "event.view") in actions
    assert ("operator", "event.close") in actions and ("operator", "event.acknowledge") in actions
    assert audit.verify(db) == (True, None)


def test_the_event_page_says_when_and_why_its_clip_was_lost(live, camera, browser):
    """The camera was stopped while recording the clip and could not read it back after restarting: it says
    so (clip_lost), and the operator sees that, where the player would be, rather than a clip "arriving"."""
    from selenium.webdriver.common.by import By

    event_id, clip_id = ids.new_id(), ids.new_id()
    camera.event(event_id, clip_id=clip_id, severity="critical", label="person")
    camera.snapshot(event_id, jpeg(), 320, 240)
    camera.send(
        messages.ClipLost(
            device="cam-01",
            clip_id=clip_id,
            event_id=event_id,
            reason="interrupted",
            detail="the camera agent stopped while recording and the partial file could not be read",
        )
    )
    db = live.central.db()
    deadline = time.monotonic() + 20
    while not db["clips"].count_where("clip_id = ? AND state = 'lost'", [clip_id]):
        assert time.monotonic() < deadline, "the clip never marked lost"
        time.sleep(0.1)

    log_in(browser, live.web.url, "operator")
    browser.get(f"{live.web.url}/events/{event_id}")
    lost = wait_until(browser, lambda d: d.find_element(By.ID, "clip-lost"), "the lost clip")
    assert lost.text == "Clip lost: interrupted when the camera restarted"
    detail = browser.find_element(By.ID, "clip-lost-detail").text
    assert "the partial file could not be read" in detail
    assert not browser.find_elements(By.ID, "clip") and "arriving" not in browser.page_source
    wait_until(
        browser,
        lambda d: d.execute_script(
            "const i = document.getElementById('snapshot'); return i && i.complete && i.naturalWidth === 320"
        ),
        "the snapshot",
    )
    browser.save_screenshot(str(SCREENSHOTS / "16-event-clip-lost.png"))
    # The API says the same, with the camera's reason as stored.
    media = browser.execute_script(f"return (await (await fetch('/api/v1/events/{event_id}')).json()).media")
    assert media["clip_state"] == "lost" and media["clip_url"] is None
    assert media["clip_lost_reason"].startswith("interrupted: the camera agent stopped while recording")


def test_the_event_page_catches_up_on_what_changed_while_its_stream_was_closed(live, camera, browser):
    """A page's stream can be down (central restarted, the network dropped, the page came back from the
    browser's cache): what changed meanwhile came on no stream, so the page reads the event again when the stream
    opens, rather than showing "New" for an event a colleague has acknowledged."""
    from selenium.webdriver.common.by import By
    from support.patrol import wait_for

    from kuzet.central.store import workflow

    event_id = ids.new_id()
    camera.event(event_id, severity="high", label="person")
    db = live.central.db()
    wait_for(lambda: db["events"].count_where("event_id = ?", [event_id]), what="the event stored")
    log_in(browser, live.web.url, "operator")
    browser.get(f"{live.web.url}/events/{event_id}")
    live_label = "#live .label"
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, live_label).text == "live", "the stream")
    assert browser.find_element(By.ID, "event-status").text == "New"
    browser.execute_script(
        "window.kuzetSamePage = true; window.dispatchEvent(new PageTransitionEvent('pagehide'))"
    )
    workflow.acknowledge(db, event_id, "supervisor")  # told to no stream: this page's is closed
    browser.execute_script("window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))")
    wait_until(browser, lambda d: d.find_element(By.ID, "event-status").text == "Acknowledged", "the change")
    assert browser.execute_script("return window.kuzetSamePage === true")  # read again, not reloaded


def test_other_pages_render_for_a_supervisor(live, camera, browser):
    from selenium.webdriver.common.by import By

    db = live.central.db()
    db.execute(
        "UPDATE devices SET online = 1, last_seen = ?, status = ? WHERE device_id = 'cam-01'",
        [
            timeutil.now_wire(),
            json.dumps(
                {
                    "kind": "camera",
                    "software_version": "0.1.0",
                    "fps_in": 10.0,
                    "fps_processed": 9.6,
                    "detector_ms": 14.2,
                    "outbox_depth": 0,
                    "disk_free_mb": 21500.0,
                    "cpu_temp_c": 83.0,
                    "model": {"name": "coco_ssd_mobilenet_v1_quant", "sha256": "a" * 64},
                }
            ),
        ],
    )
    db.execute(
        "INSERT INTO units (device_id, callsign, lat, lon, duty, online, position_at) VALUES (?, ?, ?, ?, ?, 1, ?)",
        ["badge-12", "Patrol 12", 52.2890, 76.9700, "available", timeutil.now_wire()],
    )
    db.conn.commit()
    for kind, zone in [("loitering", "platform"), ("crowd", "square"), ("loitering", "gate")]:
        camera.event(ids.new_id(), event_type=kind, zone=zone)
    log_in(browser, live.web.url, "supervisor")

    browser.get(live.web.url + "/map")
    wait_until(
        browser, lambda d: d.find_element(By.ID, "map").get_attribute("data-loaded") == "1", "the map data"
    )
    wait_until(
        browser,
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, ".mk, .event-cluster")) >= 3
        ),  # events together: a cluster
        "camera, unit and event markers",
    )
    assert "no-tiles" in browser.find_element(By.ID, "map").get_attribute("class")
    assert browser.find_elements(By.CSS_SELECTOR, ".leaflet-control-scale-line")
    browser.save_screenshot(str(SCREENSHOTS / "04-map-no-tiles.png"))

    browser.get(live.web.url + "/devices")
    wait_until(
        browser,
        lambda d: d.find_element(By.ID, "devices-body").get_attribute("data-loaded") == "1",
        "the devices",
    )
    assert "hot: 83" in browser.find_element(By.ID, "alerts").text
    browser.save_screenshot(str(SCREENSHOTS / "05-devices.png"))
    camera.send(messages.Availability(device="cam-01", state="offline"))  # as its last will would
    wait_until(
        browser, lambda d: "offline" in d.find_element(By.ID, "dev-cam-01").text, "the camera going offline"
    )
    wait_until(browser, lambda d: "offline" in d.find_element(By.ID, "toasts").text, "the offline alert")
    browser.save_screenshot(str(SCREENSHOTS / "05b-device-offline.png"))

    browser.get(live.web.url + "/stats?by=zone")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    browser.save_screenshot(str(SCREENSHOTS / "06-stats.png"))

    browser.get(live.web.url + "/admin/audit")
    assert "hash chain intact" in browser.find_element(By.ID, "chain").text
    browser.save_screenshot(str(SCREENSHOTS / "07-audit.png"))

    browser.get(live.web.url + "/admin/users")
    assert "supervisor" in browser.find_element(By.CSS_SELECTOR, "table.data").text
    assert not browser.find_elements(By.NAME, "password")  # reading accounts, not managing them
    browser.save_screenshot(str(SCREENSHOTS / "07b-users.png"))


def test_operator_dispatches_reassigns_and_intercepts_from_the_event_page_and_map(
    tmp_path, mosquitto, browser
):
    """Central started as ``kuzet central run`` starts it (confirm policy). The operator confirms routing's
    proposal, watches the badge's answer arrive without a reload, reassigns the event to another unit with a
    reason, sends an intercept with a radius and heading, and sees it all on the map; when one officer
    resolves the event, the others stand down and the event leaves the map."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from support.patrol import Camera as StreetCamera
    from support.patrol import inbox_has, point, start_badge, wait_for

    live = LiveCentral(tmp_path, mosquitto.url, routing={"policy": "confirm", "ack_timeout_s": 60})
    badges = {
        name: start_badge(tmp_path, mosquitto.url, name, at)
        for name, at in (("badge-near", point(150)), ("badge-mid", point(-400)), ("badge-far", point(0, 700)))
    }
    camera = StreetCamera(mosquitto.url)
    units = live.routing.units
    try:
        wait_for(lambda: all((u := units.get(n)) and u.free() for n in badges), what="the three units free")
        event_id = camera.event(point(0))
        db = live.central.db()
        [proposal] = wait_for(
            lambda: list(db["dispatches"].rows_where("state = 'proposed'")), what="a proposal"
        )
        log_in(browser, live.web.url, "operator")
        browser.get(f"{live.web.url}/events/{event_id}")
        browser.execute_script("window.kuzetSamePage = true")  # gone if the page reloads

        def dispatch_state(dispatch_id):
            return lambda d: d.find_element(
                By.CSS_SELECTOR, f'li[data-dispatch="{dispatch_id}"]'
            ).get_attribute("data-state")

        wait_until(
            browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".confirm-dispatch"), "the Confirm button"
        )
        browser.save_screenshot(str(SCREENSHOTS / "08-dispatch-proposed.png"))
        click(browser, ".confirm-dispatch", "Confirm")
        first = proposal["dispatch_id"]
        wait_for(inbox_has(badges["badge-near"], first), what="the dispatch at the badge")
        badges["badge-near"].acknowledge()
        wait_until(browser, lambda d: dispatch_state(first)(d) == "acknowledged", "the acknowledgement, live")
        assert browser.execute_script("return window.kuzetSamePage === true")
        # the state in words: live, or read again when the page's stream (re)opened after the change
        wait_until(
            browser, lambda d: d.find_element(By.ID, "event-status").text == "Dispatched", "Dispatched"
        )
        assert browser.find_element(By.ID, "event-unit").text == "badge-near"
        browser.save_screenshot(str(SCREENSHOTS / "09-dispatch-acknowledged-live.png"))

        # Reassign to another unit, with a reason the first officer is told.
        click(browser, f'li[data-dispatch="{first}"] .reassign-dispatch', "Reassign")
        form = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".reassign-form"), "the form")[
            0
        ]
        Select(form.find_element(By.CSS_SELECTOR, ".reassign-unit")).select_by_value("badge-mid")
        form.find_element(By.CSS_SELECTOR, ".reassign-reason").send_keys("badge-mid has the car")
        browser.save_screenshot(str(SCREENSHOTS / "10-reassign.png"))
        form.find_element(By.CSS_SELECTOR, "button").click()
        wait_until(browser, lambda d: dispatch_state(first)(d) == "cancelled", "the first dispatch cancelled")
        [second] = wait_for(inbox_has(badges["badge-mid"]), what="the reassigned dispatch at badge-mid")
        wait_until(browser, lambda d: dispatch_state(second.dispatch_id)(d) == "sent", "the new dispatch")
        wait_for(lambda: badges["badge-near"].inbox.get(first).state == "cancelled", what="badge-near told")
        assert "badge-mid has the car" in badges["badge-near"].inbox.get(first).reason

        # Intercept: every free unit within 1 km, heading east.
        wait_for(lambda: units.get("badge-near").free(), what="badge-near free again")
        radius = browser.find_element(By.ID, "intercept-radius")
        radius.clear()
        radius.send_keys("1000")
        browser.find_element(By.ID, "intercept-direction").send_keys("90")
        browser.find_element(By.ID, "intercept-description").send_keys("man in a red jacket, running east")
        browser.find_element(By.ID, "intercept").click()
        confirmation(browser).accept()  # "Units to send within 1000 m: 2 (...). Send them all?"
        intercepts = {
            name: wait_for(
                lambda name=name: [i for i in badges[name].inbox.items() if i.dispatch.mode == "intercept"],
                what=f"the intercept at {name}",
            )[0]
            for name in ("badge-near", "badge-far")
        }
        for item in intercepts.values():
            assert item.dispatch.mode == "intercept" and item.dispatch.direction_deg == 90.0
            assert "red jacket" in item.dispatch.description
        wait_until(
            browser,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#dispatch-list > li")) == 4,
            "the intercept dispatches in the history",
        )
        assert browser.execute_script("return window.kuzetSamePage === true")
        browser.set_window_size(1440, 1500)
        browser.save_screenshot(str(SCREENSHOTS / "11-event-dispatches-live.png"))
        browser.set_window_size(1440, 900)

        # The map: a line from each unit under way to the event, the intercept's radius around it.
        browser.get(live.web.url + "/map")
        wait_until(
            browser,
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, "path.dispatch-line")) == 3
                and len(d.find_elements(By.CSS_SELECTOR, "path.intercept-area")) == 1
                and d.find_elements(By.CSS_SELECTOR, ".mk-event")
            ),
            "three dispatch lines and the intercept circle",
        )
        browser.save_screenshot(str(SCREENSHOTS / "12-map-dispatches.png"))

        # badge-far catches him: the others stand down, the event closes, the map clears, all live.
        badges["badge-far"].acknowledge()
        badges["badge-far"].resolve("Detained on Satpayev St")
        wait_until(
            browser,
            lambda d: (
                not d.find_elements(By.CSS_SELECTOR, "path.dispatch-line")
                and not d.find_elements(By.CSS_SELECTOR, "path.intercept-area")
                and not d.find_elements(By.CSS_SELECTOR, ".mk-event")
            ),
            "the map cleared once the event is resolved",
        )
        browser.save_screenshot(str(SCREENSHOTS / "13-map-resolved.png"))
        for name in ("badge-near", "badge-mid"):
            wait_for(lambda name=name: badges[name].inbox.current() is None, what=f"{name} stood down")
        actions = [(e["actor"], e["action"]) for e in audit.entries(db, target=f"event:{event_id}")]
        assert actions.count(("operator", "event.dispatched")) == 4  # confirmed, reassigned, two intercepts
        assert ("badge-far", "event.close") in actions
        confirmed = [e["actor"] for e in audit.entries(db, action="dispatch.confirmed", target=first)]
        assert confirmed == ["operator"]
    finally:
        camera.stop()
        for badge in badges.values():
            badge.stop()
        live.stop()


def test_alerts_are_counted_in_the_header_and_acknowledged_on_their_page(tmp_path, mosquitto, browser):
    from selenium.webdriver.common.by import By
    from support.patrol import Camera as StreetCamera
    from support.patrol import point

    live = LiveCentral(tmp_path, mosquitto.url)
    camera = StreetCamera(mosquitto.url)
    try:
        log_in(browser, live.web.url, "operator")
        browser.get(live.web.url + "/alerts")
        wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#live .label").text == "live", "live")
        assert browser.find_element(By.CSS_SELECTOR, "#alert-count .n").text == "0"
        event_id = camera.event(point(0))  # no patrol anywhere: routing alerts the operators
        row = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts-body tr"), "the alert")[
            0
        ]
        assert "no free unit" in row.text
        wait_until(
            browser, lambda d: d.find_element(By.CSS_SELECTOR, "#alert-count .n").text == "1", "count 1"
        )
        assert "has" in browser.find_element(By.ID, "alert-count").get_attribute("class")
        browser.save_screenshot(str(SCREENSHOTS / "14-alerts.png"))
        row.find_element(By.CSS_SELECTOR, "button.ack-alert").click()
        wait_until(
            browser, lambda d: d.find_element(By.CSS_SELECTOR, "#alert-count .n").text == "0", "count 0"
        )
        wait_until(
            browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#alerts-body tr"), "the list empty"
        )
        [entry] = audit.entries(live.central.db(), action="alert.acknowledge")
        assert entry["actor"] == "operator"
        browser.get(live.web.url + "/alerts?state=all")
        assert "operator" in browser.find_element(By.ID, "alerts-body").text
        assert event_id in browser.find_element(By.CSS_SELECTOR, "#alerts-body a").get_attribute("href")
    finally:
        camera.stop()
        live.stop()


def test_operator_watches_a_badge_live_and_checks_its_evidence(tmp_path, mosquitto, browser, footage):
    """A real badge streams real footage on the operator's request, from the device page; who watched is
    audited; the page also shows the badge's evidence chain as verified."""
    from selenium.webdriver.common.by import By
    from support.patrol import point, start_badge, wait_for

    live = LiveCentral(tmp_path, mosquitto.url)
    badge = start_badge(
        tmp_path,
        mosquitto.url,
        "badge-3",
        point(0),
        camera={"source": str(footage / "pets09-s2l1" / "vtest.avi")},
        live={"fps": 5, "max_kbps": 400, "width": 480, "jpeg_quality": 70, "max_duration_s": 60},
        evidence={"enabled": True, "mode": "always", "segment_s": 1.0, "fps": 4, "width": 320},
    )
    db = live.central.db()
    try:
        verified = "select count(*) from clips where purpose = 'evidence' and state = 'verified'"
        wait_for(lambda: db.execute(verified).fetchone()[0] >= 2, timeout_s=40, what="evidence at central")
        wait_for(
            lambda: db.execute("select online from devices where device_id = 'badge-3'").fetchone()[0],
            what="online",
        )
        log_in(browser, live.web.url, "operator")
        browser.get(live.web.url + "/devices/badge-3")
        status = wait_until(
            browser,
            lambda d: d.find_element(By.ID, "evidence-status").get_attribute("data-status"),
            "the evidence chain status",
        )
        # Recording goes on while the page opens: the newest recording may still be on its way.
        assert status in ("verified", "incomplete"), browser.find_element(By.ID, "evidence-status").text
        duration = browser.find_element(By.ID, "live-duration")
        duration.clear()
        duration.send_keys("30")
        browser.find_element(By.ID, "live-start").click()
        wait_until(
            browser,
            lambda d: d.execute_script(
                "const i = document.getElementById('live-frame');"
                "return i.complete && i.naturalWidth === 480 && Number(i.dataset.frames) >= 5"
            ),
            "live frames from the badge",
        )
        wait_until(
            browser,
            lambda d: "done" in d.find_element(By.CSS_SELECTOR, "#commands-body tr").text,
            "the badge's answer to live_start",
        )
        browser.save_screenshot(str(SCREENSHOTS / "15-device-live-view.png"))
        browser.find_element(By.ID, "live-stop").click()
        wait_until(browser, lambda d: "stopped" in d.find_element(By.ID, "live-info").text, "stopped")
        wait_for(lambda: badge.live is None, what="the badge's stream stopped")
        wait_for(
            lambda: audit.entries(db, action="live.watch_end", target="device:badge-3"),
            what="the end audited",
        )
        target = "device:badge-3"
        watched = [(e["actor"], e["action"]) for e in audit.entries(db, target=target)]
        assert ("operator", "live.watch") in watched and ("operator", "live.watch_end") in watched
        sent = [e["detail"]["name"] for e in audit.entries(db, action="device.command", target=target)]
        assert sorted(sent) == ["live_start", "live_stop"]
        [end] = audit.entries(db, action="live.watch_end", target=target)
        assert end["detail"]["frames"] >= 5
    finally:
        badge.stop()
        live.stop()


def test_the_live_view_waits_through_a_gap_and_ends_once_the_device_has_stopped(live, mosquitto, browser):
    """A badge on a weak link goes quiet for a few seconds: before the time asked for is over the view says so
    and keeps waiting (the frames after the gap are shown); after it, silence means the device has stopped."""
    from selenium.webdriver.common.by import By
    from support.patrol import wait_for

    from kuzet.central.store import registry

    registry.register(
        live.central.db(),
        registry.Registration(device_id="badge-9", kind="badge", name="Patrol 9", site="pavlodar"),
        actor="test",
    )
    badge = Camera(mosquitto.url, device="badge-9")  # publishes as the badge would, frames included
    badge.send(messages.Availability(device="badge-9", state="online"))
    stream, picture = ids.new_id(), messages.to_base64(jpeg(320, 240))

    def frames(first: int, count: int) -> None:
        for seq in range(first, first + count):
            badge.send(messages.LiveFrame(device="badge-9", stream_id=stream, seq=seq, width=320, height=240,
                                          data=picture))  # fmt: skip

    def shown(d) -> int:
        return int(d.find_element(By.ID, "live-frame").get_attribute("data-frames") or 0)

    try:
        online = "select online from devices where device_id = 'badge-9'"
        wait_for(lambda: live.central.db().execute(online).fetchone()[0], what="the badge online")
        log_in(browser, live.web.url, "operator")
        browser.get(live.web.url + "/devices/badge-9")  # live view offered for a device online only
        duration = browser.find_element(By.ID, "live-duration")
        duration.clear()
        duration.send_keys("14")
        browser.find_element(By.ID, "live-start").click()
        wait_until(browser, lambda d: "starting" in d.find_element(By.ID, "live-info").text, "the start sent")
        frames(0, 2)
        wait_until(browser, lambda d: shown(d) == 2, "the first frames")
        info = browser.find_element(By.ID, "live-info")
        wait_until(browser, lambda d: "waiting for the device" in info.text, "the gap said", timeout_s=10)
        assert browser.find_element(By.ID, "live-stop").is_enabled()  # still watching
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", info)  # the notice in view
        browser.save_screenshot(str(SCREENSHOTS / "15b-device-live-gap.png"))
        frames(2, 2)
        wait_until(browser, lambda d: shown(d) == 4 and "live" in info.text, "the frames after the gap")
        # The 14 s asked for run out; 5 s without a frame after that: the device has stopped by itself.
        wait_until(browser, lambda d: "stream ended · frames: 4" in info.text, "the end", timeout_s=25)
        assert browser.find_element(By.ID, "live-start").is_enabled()
    finally:
        badge.stop()


def test_a_page_left_open_is_signed_out_when_its_account_is_disabled(live, browser):
    from selenium.webdriver.common.by import By

    from kuzet.central.auth import users

    live.web.app.config["SSE_RECHECK_S"] = 0.2
    log_in(browser, live.web.url, "operator")
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#live .label").text == "live", "live")
    users.set_disabled(live.central.db(), "operator", True, actor="admin")
    wait_until(browser, lambda d: "/login" in d.current_url, "the log-in page once the account is disabled")
