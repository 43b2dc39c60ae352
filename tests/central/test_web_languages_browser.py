"""The page in Russian and Kazakh in a real headless Chromium, against central running for real (Mosquitto,
ingest, waitress): words, state labels and script-made rows in the reader's language, times in the site's zone,
and the evidence package downloaded from the event page.
Screenshots go to artifacts/screenshots/ for people to look at."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
from support.browser import SCREENSHOTS, click, wait_until
from support.patrol import wait_for
from support.web import PASSWORD, Camera, LiveCentral, jpeg

from kuzet.central.auth import preferences
from kuzet.central.store import registry
from kuzet.shared import ids

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path, mosquitto):
    running = LiveCentral(tmp_path, mosquitto.url, site={"language": "ru"})
    registry.register(
        running.central.db(),
        registry.Registration(
            device_id="cam-01",
            kind="camera",
            name="ул. Торайгырова / Ленина",
            site="pavlodar",
            lat=52.2869,
            lon=76.9648,
        ),
        actor="test",
    )
    yield running
    running.stop()


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def check_package(browser, package) -> None:
    """The downloaded zip, once complete: every file matches its line in the manifest."""
    wait_until(browser, lambda d: package.exists() and zipfile.is_zipfile(package), "the downloaded package")
    with zipfile.ZipFile(package) as archive:
        for line in archive.read("MANIFEST.sha256").decode().splitlines():
            digest, name = line.split("  ", 1)
            assert hashlib.sha256(archive.read(name)).hexdigest() == digest
        assert "snapshot.jpg" in archive.namelist()


def test_operator_works_in_russian_then_kazakh(live, mosquitto, browser, tmp_path):
    from selenium.webdriver.common.by import By

    camera = Camera(mosquitto.url)
    try:
        event_id = ids.new_id()
        camera.event(event_id, event_type="loitering", severity="critical", zone="platform", label="person")
        camera.snapshot(event_id, jpeg(), 320, 240)
        # Stored before the page opens: a late update would redraw the row under the assertions below.
        wait_for(
            lambda: (
                live.central.db()
                .execute(
                    "SELECT 1 FROM events WHERE event_id = ? AND snapshot_sha256 IS NOT NULL", [event_id]
                )
                .fetchone()
            ),
            what="the event and its snapshot at central",
        )

        browser.get(live.web.url + "/login")
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ru"
        assert "Имя пользователя" in browser.find_element(By.TAG_NAME, "main").text
        browser.find_element(By.ID, "username").send_keys("operator")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "login").click()
        wait_until(
            browser,
            lambda d: d.find_element(By.ID, "queue-body").get_attribute("data-loaded") == "1",
            "queue",
        )
        wait_until(
            browser, lambda d: text_of(d, "#live .label") == "в эфире", "the live indicator in Russian"
        )
        wait_until(browser, lambda d: d.find_elements(By.ID, f"ev-{event_id}"), "the event")
        # Read in one go: the queue redraws its rows when its stream opens, which may be after they first show.
        row = browser.execute_script(
            "const r = document.getElementById(arguments[0]), time = r.querySelector('td.mono');"
            "return {text: r.innerText, ack: r.querySelector('button.ack').innerText,"
            " started: time.title, shown: time.innerText}",
            f"ev-{event_id}",
        )
        # Made by the script from the API's English keys: words from the page's dictionary.
        assert "критическая" in row["text"].lower() and "Праздное нахождение" in row["text"]
        assert "Новое" in row["text"] and row["ack"] == "Принять"
        # The row's time is the site's (UTC+5): the API's ISO time shifted by five hours.
        started, shown = row["started"], row["shown"]
        assert shown.endswith(f"{(int(started[11:13]) + 5) % 24:02d}:{started[14:16]}:{started[17:19]}")
        browser.save_screenshot(str(SCREENSHOTS / "ru-queue.png"))

        click(browser, f"#ev-{event_id} button.ack", "Принять")
        wait_until(
            browser, lambda d: "Принято" in d.find_element(By.ID, f"ev-{event_id}").text, "acknowledged"
        )
        browser.find_element(By.ID, f"ev-{event_id}").click()
        wait_until(browser, lambda d: f"/events/{event_id}" in d.current_url, "the event page")
        assert text_of(browser, "#event-status") == "Принято"
        assert "сведения" in browser.find_element(By.TAG_NAME, "main").text.lower()
        browser.save_screenshot(str(SCREENSHOTS / "ru-event.png"))

        # The evidence package in one click: a zip whose manifest matches its files.
        button = browser.find_element(By.ID, "export-evidence")
        assert button.text.endswith("Выгрузить пакет доказательств")
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        browser.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        button.click()
        package = downloads / f"kuzet-evidence-{event_id}.zip"
        check_package(browser, package)

        # Kazakh from the header: the page, the scripts' words and the choice kept with the account.
        browser.find_element(By.ID, "lang-kk").click()
        wait_until(
            browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "kk", "Kazakh"
        )
        assert text_of(browser, "#event-status") == "Қабылданды"
        assert "мәліметтер" in browser.find_element(By.TAG_NAME, "main").text.lower()
        browser.save_screenshot(str(SCREENSHOTS / "kk-event.png"))
        # The evidence package from the Kazakh page too.
        package.unlink()
        button = browser.find_element(By.ID, "export-evidence")
        assert button.text.endswith("Дәлелдемелер пакетін жүктеп алу")
        button.click()
        check_package(browser, package)
        assert preferences.get(live.central.db(), "operator").language == "kk"
        browser.find_element(By.CSS_SELECTOR, "nav.main a[href='/']").click()  # Events
        wait_until(
            browser,
            lambda d: d.find_element(By.ID, "queue-body").get_attribute("data-loaded") == "1",
            "queue",
        )
        wait_until(browser, lambda d: text_of(d, "#live .label") == "тікелей", "the live indicator in Kazakh")
        row = browser.execute_script(
            "return document.getElementById(arguments[0]).innerText", f"ev-{event_id}"
        )
        assert "өте жоғары" in row.lower() and "Ұзақ аялдау" in row and "Қабылданды" in row
        browser.save_screenshot(str(SCREENSHOTS / "kk-queue.png"))
    finally:
        camera.stop()
