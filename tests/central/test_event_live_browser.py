"""The event page in Russian in headless Chromium, against central running for real (Mosquitto, ingest,
waitress): the snapshot, the clip and the track's updates appear on the open page as they arrive, without a
reload, and the track timeline names its states in words at the site's local times."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from support.browser import SCREENSHOTS, chromium, log_in, wait_until
from support.patrol import wait_for
from support.web import PASSWORD, Camera, LiveCentral, h264_clip, jpeg

from kuzet.central.store import registry
from kuzet.shared import ids, timeutil

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    driver = chromium(1440, 1600)
    yield driver
    driver.quit()


@pytest.fixture
def live(tmp_path, mosquitto):
    running = LiveCentral(tmp_path, mosquitto.url, site={"language": "ru"})
    registry.register(
        running.central.db(),
        registry.Registration(device_id="cam-01", kind="camera", name="ул. Торайгырова", site="pavlodar"),
        actor="test",
    )
    yield running
    running.stop()


def test_snapshot_clip_and_track_arrive_on_the_open_event_page(live, mosquitto, browser, tmp_path):
    from selenium.webdriver.common.by import By

    camera = Camera(mosquitto.url)
    try:
        event_id = ids.new_id()
        camera.event(event_id, seq=0, state="open", score=0.55)
        wait_for(
            lambda: (
                live.central.db().execute("SELECT 1 FROM events WHERE event_id = ?", [event_id]).fetchone()
            ),
            what="the event at central",
        )
        log_in(browser, live.web.url, "operator", PASSWORD)
        browser.get(f"{live.web.url}/events/{event_id}")
        wait_until(
            browser, lambda d: d.find_element(By.CSS_SELECTOR, "#live .label").text == "в эфире", "live"
        )
        assert "появится здесь" in browser.find_element(By.ID, "no-clip").text
        assert browser.find_elements(By.ID, "no-snapshot")
        browser.execute_script("window.notReloaded = true")

        camera.event(event_id, seq=1, state="update", score=0.8)
        camera.snapshot(event_id, jpeg(), 320, 240)
        clip_sha = camera.clip(event_id, h264_clip(tmp_path / "clip.mp4"), "video/mp4")
        camera.event(event_id, seq=2, state="closed", score=0.7)

        wait_until(
            browser,
            lambda d: d.execute_script(
                "const i = document.getElementById('snapshot'); return i && i.complete && i.naturalWidth === 320"
            ),
            "the snapshot arriving",
        )
        source = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#clip source"), "the clip")[
            0
        ]
        assert clip_sha in source.get_attribute("src")
        wait_until(
            browser,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#track-timeline tbody tr")) == 3,
            "3 updates",
        )
        assert browser.execute_script("return window.notReloaded") is True  # all of it without a reload

        # The timeline: each change of state named in Russian above the line, with the site's local time.
        states = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#track-timeline text.tl-state")]
        assert [s.split()[0] for s in states] == ["открыто", "обновление", "закрыто"]
        opened_at = (
            live.central.db()
            .execute("SELECT ts FROM event_updates WHERE event_id = ? AND seq = 0", [event_id])
            .fetchone()[0]
        )
        local = timeutil.from_wire(opened_at) + timedelta(hours=5)  # Asia/Almaty is UTC+5
        assert states[0] == "открыто " + local.strftime("%H:%M:%S")
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#track-timeline tbody tr")]
        assert "закрыто" in rows[-1] and "70%" in rows[-1]
        ticks = browser.find_elements(By.CSS_SELECTOR, "#track-timeline text.tl-tick")
        assert ticks and all(t.text.count(":") == 2 for t in ticks)
        assert browser.find_element(By.ID, "event-edge-state").text == "закрыто (обновление 2)"
        time.sleep(0.3)  # let the video's first frame paint for the screenshot
        browser.save_screenshot(str(SCREENSHOTS / "ru-event-live-evidence.png"))
        browser.execute_script("document.getElementById('track-timeline').scrollIntoView()")
        browser.save_screenshot(str(SCREENSHOTS / "ru-event-track-timeline.png"))
    finally:
        camera.stop()
