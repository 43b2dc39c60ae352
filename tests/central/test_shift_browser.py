"""The shift page and the response times in Russian in headless Chromium, against central's page served by
waitress: an operator writes a hand-over and sees it with its local time; a supervisor reads the response
times per shift and per unit. Screenshots in artifacts/screenshots/."""

from __future__ import annotations

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.browser import SCREENSHOTS, chromium, log_in, wait_until
from support.shift import respond
from support.web import PASSWORD

from kuzet.central.store import shifts
from kuzet.shared import timeutil

pytestmark = pytest.mark.browser


@pytest.fixture
def central_options():
    return {"accounts": True, "site": {"language": "ru"}}


@pytest.fixture
def browser():
    driver = chromium(1440, 1000)
    yield driver
    driver.quit()


def test_operator_writes_a_hand_over_and_sees_their_incidents(central, web_server, browser):
    from selenium.webdriver.common.by import By

    running = shifts.shift_of(timeutil.utc_now(), ["08:00", "20:00"], ZoneInfo("Asia/Almaty"))
    event = respond(
        central.db(), running.start.astimezone(UTC) + timedelta(seconds=20), 15, None, None, None, 300
    )
    log_in(browser, web_server.url, "operator", PASSWORD)
    browser.find_element(By.LINK_TEXT, "Смена").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "shift-log"), "the shift page")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Смена ")
    [row] = browser.find_elements(By.CSS_SELECTOR, "#my-incidents tr[data-event]")
    assert row.get_attribute("data-event") == event["event_id"]
    assert "принято" in row.text and "закрыто" in row.text

    browser.find_element(By.CSS_SELECTOR, "input[name=kind][value=handover]").click()
    browser.find_element(By.ID, "shift-entry-text").send_keys(
        "Камера cam-01 не в сети с 19:40; наряд П-2 на базе."
    )
    browser.find_element(By.ID, "shift-entry-add").click()
    entry = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".shift-entry"), "the entry")[0]
    assert "Передача смены" in entry.text and "operator" in entry.text
    assert "наряд П-2 на базе" in entry.text
    written = central.db().execute("SELECT at FROM shift_log").fetchone()[0]
    local = (timeutil.from_wire(written) + timedelta(hours=5)).strftime("%H:%M:%S")  # Asia/Almaty, UTC+5
    assert local in entry.find_element(By.CSS_SELECTOR, ".mono").text
    browser.save_screenshot(str(SCREENSHOTS / "ru-shift-log.png"))


def test_supervisor_reads_response_times_per_shift_and_per_unit(central, web_server, browser):
    from selenium.webdriver.common.by import By

    running = shifts.shift_of(timeutil.utc_now(), ["08:00", "20:00"], ZoneInfo("Asia/Almaty"))
    base = running.start.astimezone(UTC) + timedelta(seconds=30)
    respond(central.db(), base, 40, 70, 85, 430, 1500, unit="badge-1")
    respond(central.db(), base, 80, 130, 140, 610, None, unit="badge-2")
    log_in(browser, web_server.url, "supervisor", PASSWORD)
    browser.get(web_server.url + "/stats")
    table = wait_until(browser, lambda d: d.find_element(By.ID, "response-by-shift"), "the response times")
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "th")]
    assert headers[:3] == ["СМЕНА", "ПРОИСШЕСТВИЯ", "ДО ПРИНЯТИЯ"] or headers[:3] == [
        "Смена",
        "Происшествия",
        "До принятия",
    ]
    first = table.find_element(By.CSS_SELECTOR, f"tr[data-shift='{running.key}']")
    cells = [td.text for td in first.find_elements(By.TAG_NAME, "td")]
    # Two events: median to acknowledge 1:00 (40 s and 80 s), to dispatch 1:40, to arrival 8:40.
    assert cells[1] == "2" and cells[2].startswith("1:00") and cells[3].startswith("1:40")
    assert cells[4].startswith("8:40") and cells[5].startswith("25:00")
    units = {
        tr.get_attribute("data-unit"): [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, "#response-by-unit tr[data-unit]")
    }
    assert units["badge-1"][2].startswith("1:25") and units["badge-2"][5] == "—"
    browser.execute_script("document.getElementById('response-times').scrollIntoView()")
    browser.save_screenshot(str(SCREENSHOTS / "ru-response-times.png"))
