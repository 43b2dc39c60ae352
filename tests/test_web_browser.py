"""The page in a real headless Chromium (Debian's), against central running for real: Mosquitto, ingest,
waitress. An operator logs in, a camera's event arrives live over MQTT, the operator opens it and its clip
plays. Screenshots are kept in artifacts/screenshots/ for people to look at."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from web_support import PASSWORD, Camera, LiveCentral, jpeg, webm_clip

from central.auth import audit
from shared import ids, messages, timeutil

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture
def browser():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1440,900",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.implicitly_wait(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def live(tmp_path, mosquitto):
    running = LiveCentral(tmp_path, mosquitto.url)
    yield running
    running.stop()


@pytest.fixture
def camera(mosquitto, live):
    from central.store import registry

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


def wait_until(driver, condition, what: str, timeout_s: float = 20.0):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)  # the page may be reloading
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1, ignored_exceptions=ignored).until(
            condition
        )
    except Exception:
        driver.save_screenshot(str(SCREENSHOTS / f"failed-{what.replace(' ', '-')}.png"))
        raise AssertionError(f"the page never showed {what}") from None


def log_in(driver, url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.save_screenshot(str(SCREENSHOTS / "01-login.png"))
    driver.find_element(By.ID, "login").click()
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "header .whoami"), "the page after log-in")


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
    clip = webm_clip(tmp_path / "clip.webm")
    camera.event(event_id, severity="critical", label="person", zone="platform")
    camera.snapshot(event_id, jpeg(), 320, 240)
    clip_sha = camera.clip(event_id, clip, "video/x-matroska")

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
    browser.execute_script("arguments[0].play()", video)
    wait_until(
        browser,
        lambda d: d.execute_script(
            "return arguments[0].readyState >= 2 && arguments[0].currentTime > 0.5", video
        ),
        "the clip playing",
    )
    assert browser.execute_script("return arguments[0].error", video) is None
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
        browser, lambda d: d.find_element(By.ID, "event-status").text == "acknowledged", "acknowledged"
    )
    browser.find_element(By.ID, "note").send_keys("Patrol 12 spoke to the person; left the platform.")
    browser.find_element(By.ID, "close").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "event-status").text == "closed", "closed")

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
        browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".mk")) >= 3, "camera, unit and event markers"
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


def test_operator_confirms_a_patrol_from_the_event_page(tmp_path, mosquitto, browser):
    """Routing proposes the nearest patrol (confirm policy); the operator confirms it on the page and the
    badge gets the dispatch."""
    from patrol_helpers import Camera as StreetCamera
    from patrol_helpers import Centre, inbox_has, point, start_badge, wait_for
    from selenium.webdriver.common.by import By

    from central.auth import users
    from central.web.server import WebServer

    centre = Centre(tmp_path, mosquitto.url, policy="confirm", ack_timeout_s=60)
    users.create_user(centre.db(), "operator", PASSWORD, "operator", "Aigerim", actor="test")
    web = WebServer(centre.central, host="127.0.0.1", port=0, routing_service=centre.routing)
    web.app.config["SSE_HEARTBEAT_S"] = 0.5
    web.start()
    badge = start_badge(tmp_path, mosquitto.url, "badge-near", point(150), centre)
    camera = StreetCamera(mosquitto.url)
    try:
        event_id = camera.event(point(0))
        [proposal] = wait_for(lambda: centre.dispatches(state="proposed"), what="routing's proposal")
        log_in(browser, web.url, "operator")
        browser.get(f"{web.url}/events/{event_id}")
        wait_until(
            browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".confirm-dispatch"), "the Confirm button"
        )
        browser.save_screenshot(str(SCREENSHOTS / "08-dispatch-proposed.png"))
        browser.find_element(By.CSS_SELECTOR, ".confirm-dispatch").click()
        wait_for(inbox_has(badge, proposal["dispatch_id"]), what="the dispatch at the badge")
        wait_until(
            browser,
            lambda d: (
                d.find_element(
                    By.CSS_SELECTOR, f'li[data-dispatch="{proposal["dispatch_id"]}"]'
                ).get_attribute("data-state")
                != "proposed"
            ),
            "the dispatch sent",
        )
        browser.save_screenshot(str(SCREENSHOTS / "09-dispatch-sent.png"))
        assert any(
            e["actor"] == "operator" and e["action"] == "dispatch.confirmed"
            for e in audit.entries(centre.db(), target=proposal["dispatch_id"])
        )
    finally:
        camera.stop()
        badge.stop()
        web.stop()
        centre.stop()
