"""The triage board in a real headless Chromium, in Russian then Kazakh, against central running for real
(Mosquitto, ingest, waitress): re-fires folded into one incident, the critical one first, a ticking waiting
timer, the keyboard and its help, bulk acknowledge, and interruptions for critical incidents only.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import pytest
from support.browser import SCREENSHOTS, wait_until
from support.ingest import wait_for
from support.web import PASSWORD, Camera, LiveCentral, jpeg

from kuzet.central.store import registry
from kuzet.shared import ids

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path, mosquitto):
    running = LiveCentral(tmp_path, mosquitto.url, site={"language": "ru"})
    for device, name in (
        ("cam-01", "ул. Торайгырова / Ленина"),
        ("cam-02", "пр. Назарбаева / Академика Сатпаева"),
    ):
        registry.register(
            running.central.db(),
            registry.Registration(
                device_id=device, kind="camera", name=name, site="pavlodar", lat=52.2869, lon=76.9648
            ),
            actor="test",
        )
    yield running
    running.stop()


def rows(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#board-body tr")


def test_triage_board_in_russian_and_kazakh(live, mosquitto, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    street, avenue = Camera(mosquitto.url, "cam-01"), Camera(mosquitto.url, "cam-02")
    try:
        refires = [ids.new_id() for _ in range(3)]
        for event_id in refires:  # the same rule firing again and again: one incident
            street.event(event_id, event_type="loitering", severity="medium", zone="platform")
        street.snapshot(refires[-1], jpeg(), 320, 240)
        critical = ids.new_id()
        avenue.event(critical, event_type="crowd", severity="critical", zone="square")
        # All at central before the page opens: a late update would redraw the rows under the assertions.
        wait_for(
            lambda: (
                live.central.db()
                .execute("SELECT count(*) FROM events WHERE snapshot_sha256 IS NOT NULL OR device = 'cam-02'")
                .fetchone()[0]
                == 2
            ),
            what="the events and the snapshot at central",
        )

        browser.get(live.web.url + "/login")
        browser.find_element(By.ID, "username").send_keys("operator")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "login").click()
        wait_until(
            browser, lambda d: d.find_elements(By.CSS_SELECTOR, "header .whoami"), "the page after log-in"
        )
        browser.find_element(By.LINK_TEXT, "Происшествия").click()
        wait_until(
            browser,
            lambda d: len(rows(d)) == 2 and d.find_elements(By.CSS_SELECTOR, "img.thumb"),
            "2 incidents",
        )
        first, second = rows(browser)
        assert "критическая" in first.text.lower() and "Скопление людей" in first.text
        assert "пр. Назарбаева / Академика Сатпаева" in first.text
        assert (
            "Праздное нахождение" in second.text
            and "×3" in second.text
            and "ул. Торайгырова / Ленина" in second.text
        )
        start = second.find_element(By.CSS_SELECTOR, ".waiting").text
        wait_until(
            browser,
            lambda d: rows(d)[1].find_element(By.CSS_SELECTOR, ".waiting").text != start,
            "the waiting timer ticking",
        )
        body = browser.find_element(By.ID, "board-body")
        assert body.get_attribute("data-interrupts") is None  # what was there before the page: no alarm

        # Keyboard: the help overlay, the cursor, select, and acknowledge the three re-fires at once.
        page = browser.find_element(By.TAG_NAME, "body")
        page.send_keys("?")
        help_box = browser.find_element(By.ID, "help")
        wait_until(browser, lambda d: help_box.is_displayed(), "the help overlay")
        assert "горячие клавиши" in help_box.text.lower()
        browser.save_screenshot(str(SCREENSHOTS / "ru-triage-help.png"))
        page.send_keys(Keys.ESCAPE)
        wait_until(browser, lambda d: not help_box.is_displayed(), "the help closed")
        page.send_keys("j")
        page.send_keys("j")
        wait_until(
            browser, lambda d: "cursor" in rows(d)[1].get_attribute("class"), "the cursor on the second row"
        )
        page.send_keys("x")
        wait_until(
            browser, lambda d: d.find_element(By.ID, "selected-count").text == "выбрано: 1", "one selected"
        )
        browser.save_screenshot(str(SCREENSHOTS / "ru-triage.png"))
        page.send_keys("a")
        wait_until(browser, lambda d: "Принято" in rows(d)[1].text, "the incident acknowledged")
        statuses = {
            r["status"] for r in live.central.db().query("SELECT status FROM events WHERE device = 'cam-01'")
        }
        assert statuses == {"acknowledged"}

        # A low re-fire waits quietly; a new critical incident interrupts.
        street.event(ids.new_id(), event_type="running", severity="low", zone="gate")
        wait_until(browser, lambda d: len(rows(d)) == 3, "the low incident")
        assert body.get_attribute("data-interrupts") is None
        avenue.event(ids.new_id(), event_type="line_crossing", severity="critical", zone="square")
        wait_until(
            browser, lambda d: body.get_attribute("data-interrupts") == "1", "the critical interruption"
        )

        browser.find_element(By.ID, "lang-kk").click()
        wait_until(
            browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "kk", "Kazakh"
        )
        wait_until(browser, lambda d: len(rows(d)) == 4, "the board in Kazakh")
        assert "Адамдар тобы" in browser.find_element(By.ID, "board-body").text
        assert "Дыбыс" in browser.find_element(By.TAG_NAME, "main").text
        browser.save_screenshot(str(SCREENSHOTS / "kk-triage.png"))
        # A time range typed as a Kazakh reader writes it, whatever the browser's own language (a datetime-local
        # field would follow the browser: mm/dd/yyyy in this English Chromium).
        until = browser.find_element(By.NAME, "until")
        assert (
            until.get_attribute("type") == "text" and until.get_attribute("placeholder") == "кк.аа.жжжж сс:мм"
        )
        until.send_keys("01.01.2026 00:00" + Keys.TAB)
        wait_until(browser, lambda d: len(rows(d)) == 0, "no incident before 2026")
        until.clear()
        until.send_keys("31.12.2099 23:59" + Keys.TAB)
        wait_until(browser, lambda d: len(rows(d)) == 4, "the incidents again, up to 2099")
    finally:
        street.stop()
        avenue.stop()


def test_d_on_the_board_dispatches_the_nearest_free_patrol(tmp_path, mosquitto, browser):
    """An incident routing does not send anyone to by itself (a zone entry): the operator moves to it with the
    keyboard and presses d; the nearest free badge gets the dispatch."""
    from selenium.webdriver.common.by import By
    from support.patrol import Camera as StreetCamera
    from support.patrol import inbox_has, point, start_badge, wait_for

    live = LiveCentral(tmp_path, mosquitto.url, site={"language": "kk"})
    badges = {
        name: start_badge(tmp_path, mosquitto.url, name, at)
        for name, at in (("badge-near", point(120)), ("badge-far", point(-900)))
    }
    camera = StreetCamera(mosquitto.url)
    try:
        wait_for(
            lambda: all((u := live.routing.units.get(n)) and u.free() for n in badges), what="the units free"
        )
        event_id = camera.event(point(0), event_type="zone_enter", severity="high")
        browser.get(live.web.url + "/login")
        browser.find_element(By.ID, "username").send_keys("operator")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "login").click()
        wait_until(
            browser, lambda d: d.find_elements(By.CSS_SELECTOR, "header .whoami"), "the page after log-in"
        )
        browser.get(live.web.url + "/incidents")
        wait_until(browser, lambda d: len(rows(d)) == 1, "the incident")
        assert "Аймаққа кіру" in rows(browser)[0].text
        assert not list(live.central.db()["dispatches"].rows)  # nobody sent yet
        page = browser.find_element(By.TAG_NAME, "body")
        page.send_keys("j")
        page.send_keys("d")
        [dispatch] = wait_for(lambda: list(live.central.db()["dispatches"].rows), what="the dispatch")
        assert (dispatch["event_id"], dispatch["unit"]) == (event_id, "badge-near")
        wait_for(inbox_has(badges["badge-near"], dispatch["dispatch_id"]), what="the dispatch at the badge")
        wait_until(browser, lambda d: "Жасақ жіберілді" in rows(d)[0].text, "the incident dispatched")
        browser.save_screenshot(str(SCREENSHOTS / "kk-triage-dispatched.png"))
    finally:
        camera.stop()
        for badge in badges.values():
            badge.stop()
        live.stop()
