"""The watchlist pages in a real headless Chromium against central running for real: a supervisor enrols an
entry with a photo through the form, a camera's possible match arrives over MQTT, the supervisor sees it side
by side (enrolled photo, captured face, scene) under the duty notice and rejects it with a note.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import cv2
import pytest
from support.browser import SCREENSHOTS, log_in, wait_until
from support.web import Camera, jpeg

from kuzet.central.store import registry
from kuzet.shared import ids, timeutil

pytestmark = pytest.mark.browser
pytest.importorskip("dlib", reason="the 'faces' extra is not installed")


def test_a_supervisor_enrols_then_reviews_a_possible_match(live, mosquitto, browser, footage, tmp_path):
    from selenium.webdriver.common.by import By

    url = live.web.url
    log_in(browser, url, "supervisor")
    browser.get(url + "/watchlist/")
    assert "10,000" in browser.find_element(By.ID, "false-alarm-cost").text
    form = browser.find_element(By.ID, "watchlist-form")
    form.find_element(By.NAME, "name").send_keys("Ерлан Жумабаев")
    form.find_element(By.NAME, "case_number").send_keys("KZ-2026-0042")
    form.find_element(By.NAME, "authority").send_keys("ДП Павлодарской области")
    form.find_element(By.NAME, "reason").send_keys("missing since 3 December")
    expires = (timeutil.utc_now() + timedelta(days=30)).strftime("%d.%m.%Y")  # as people write it, day first
    form.find_element(By.NAME, "expires_on").send_keys(expires)
    form.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait_until(
        browser,
        lambda d: "/watchlist/" in d.current_url and d.find_elements(By.ID, "entry-photos"),
        "the entry page",
    )
    entry_id = browser.current_url.rstrip("/").rsplit("/", 1)[1]

    photo = tmp_path / "photo.jpg"
    photo.write_bytes((footage / "faces" / "pairs" / "img2.jpg").read_bytes())
    browser.find_element(By.CSS_SELECTOR, "#entry-photos input[type=file]").send_keys(str(photo))
    browser.find_element(By.CSS_SELECTOR, "#entry-photos form button").click()
    wait_until(browser, lambda d: "Photo enrolled." in d.page_source, "the photo enrolled")
    browser.save_screenshot(str(SCREENSHOTS / "watchlist-entry.png"))

    # a camera's possible match, over MQTT through ingest
    registry.register(
        live.central.db(),
        registry.Registration(device_id="cam-01", kind="camera", site="pavlodar", lat=52.2869, lon=76.9648),
        actor="test",
    )
    camera = Camera(mosquitto.url)
    try:
        event_id = ids.new_id()
        face = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(photo)), (80, 80)))[1].tobytes()
        scene = jpeg(320, 240)
        camera.snapshot(event_id, face, 80, 80)
        camera.snapshot(event_id, scene, 320, 240)
        attributes = {
            "entry_id": entry_id,
            "distance": 0.37,
            "threshold": 0.58,
            "face_sha256": hashlib.sha256(face).hexdigest(),
        }
        camera.event(
            event_id,
            event_type="watchlist_match",
            label="face",
            zone=None,
            attributes=attributes,
            snapshot_sha256=hashlib.sha256(scene).hexdigest(),
        )
        browser.get(url + "/watchlist/matches/")
        wait_until(
            browser,
            lambda d: (
                d.get(url + "/watchlist/matches/") or d.find_elements(By.CSS_SELECTOR, "#watchlist-matches a")
            ),
            "the possible match listed",
        )
    finally:
        camera.link.stop()
    browser.find_element(By.CSS_SELECTOR, "#watchlist-matches a").click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "side-by-side"), "the match page")
    for image in ("enrolled", "captured", "scene"):
        wait_until(
            browser,
            lambda d, image=image: (
                d.execute_script(f"return document.getElementById('{image}').naturalWidth") > 0
            ),
            f"the {image} image",
        )
    notice = browser.find_element(By.ID, "operator-duty").text
    assert "This is only a possible match." in notice and "Compare the faces yourself" in notice
    browser.save_screenshot(str(SCREENSHOTS / "watchlist-match.png"))

    browser.find_element(By.NAME, "note").send_keys("not him: different ears")
    browser.find_element(By.CSS_SELECTOR, "button[value=rejected]").click()
    wait_until(
        browser, lambda d: d.find_element(By.ID, "match-state").text == "rejected", "the match rejected"
    )
    assert live.central.db().execute("SELECT COUNT(*) FROM dispatches").fetchone()[0] == 0
