"""Every page in Russian and Kazakh, as an administrator sees it (every section in the header), in a real headless
Chromium against central running for real: the page is in the reader's language, nothing on it is wider than
the window (a long Russian or Kazakh word that pushes a table or a form off the screen), none waits on the pages
before it, and a screenshot of each is kept in artifacts/screenshots/tour-<language>-<page>.png for people to look
at."""

from __future__ import annotations

import time

import pytest
from support.browser import SCREENSHOTS, log_in, wait_until
from support.patrol import wait_for
from support.web import Camera, LiveCentral, jpeg

from kuzet.central import alerts
from kuzet.central.store import registry
from kuzet.shared import ids

pytestmark = pytest.mark.browser

PAGES = {
    "incidents": "/incidents",
    "events": "/",
    "event": "/events/{event_id}",
    "units": "/units",
    "shift": "/shift",
    "map": "/map",
    "devices": "/devices",
    "device": "/devices/cam-01",
    "stats": "/stats",
    "alerts": "/alerts",
    "dead-letters": "/admin/dead-letters",
    "audit": "/admin/audit",
    "users": "/admin/users",
    "watchlist": "/watchlist/",
    "matches": "/watchlist/matches/",
}
# A word of each page's own, in each language: the page really is the translated one.
HEADER = {"ru": "Происшествия", "kk": "Инциденттер"}
COUNTED = {
    "ru": [
        "1 событие в этом происшествии",
        "2 события в этом происшествии",
        "5 событий в этом происшествии",
        "21 событие в этом происшествии",
    ],
    "kk": [f"осы инцидентте {n} оқиға" for n in (1, 2, 5, 21)],
}


@pytest.fixture(params=["ru", "kk"])
def live(request, tmp_path, mosquitto):
    running = LiveCentral(tmp_path, mosquitto.url, site={"language": request.param})
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


def out_of_view(browser) -> list[str]:
    """The header's links and buttons a person cannot see: outside the window, or scrolled out of the
    sections' own box."""
    return browser.execute_script(
        """const nav = document.querySelector("nav.main").getBoundingClientRect();
        const right = Math.min(window.innerWidth, nav.right) + 1, left = Math.max(0, nav.left) - 1;
        return [...document.querySelectorAll("header.top a, header.top button")].filter((el) => {
          const r = el.getBoundingClientRect(), inNav = !!el.closest("nav.main");
          return r.width === 0 || r.left < (inNav ? left : -1) || r.right > (inNav ? right : window.innerWidth + 1)
            || r.bottom > window.innerHeight;
        }).map((el) => el.textContent.trim());"""
    )


def test_every_page_in_the_readers_language_fits_the_window(live, mosquitto, browser):
    from selenium.webdriver.common.by import By

    language = live.central.config.site.language
    camera = Camera(mosquitto.url)
    try:
        event_id = ids.new_id()
        camera.event(event_id, event_type="object_left", severity="high", zone="platform", label="suitcase")
        camera.snapshot(event_id, jpeg(), 320, 240)
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
        db = live.central.db()
        with db.conn:  # committed at once: the running central writes too
            alerts.add(
                db,
                "warning",
                alerts.say("no_free_unit", severity="high", event_type="object_left"),
                event_id=event_id,
            )
        log_in(browser, live.web.url, "admin")
        too_wide = {}
        took = {}
        for name, path in PAGES.items():
            started = time.monotonic()
            browser.get(live.web.url + path.format(event_id=event_id))
            wait_until(
                browser, lambda d: d.find_elements(By.CSS_SELECTOR, "header .whoami"), f"the {name} page"
            )
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
            assert HEADER[language] in browser.find_element(By.CSS_SELECTOR, "nav.main").text
            # What a person sees of the page's own words: nothing left as a raw key of a state or a kind.
            text = browser.find_element(By.TAG_NAME, "main").text
            for raw in ("object_left", "suitcase", "no_free_unit"):
                assert raw not in text, f"{name}: {raw!r} shown as it is"
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                too_wide[name] = overflow
            assert out_of_view(browser) == [], f"{name}: header links out of view at 1440 px"
            browser.save_screenshot(str(SCREENSHOTS / f"tour-{language}-{name}.png"))
            took[name] = round(time.monotonic() - started, 1)
        assert too_wide == {}, f"pages wider than the window (px): {too_wide}"
        # The scripts' counts in the reader's plural forms (app.js N, Intl.PluralRules in the browser).
        counted = browser.execute_script(
            'return [1, 2, 5, 21].map((n) => N("%(n)s event in this incident", "%(n)s events in this incident", n));'
        )
        assert counted == COUNTED[language]
        # A narrower screen: the sections wrap, every one still in view (the header is every page's).
        browser.set_window_size(1280, 900)
        for name in ("incidents", "users"):
            browser.get(live.web.url + PAGES[name])
            wait_until(
                browser, lambda d: d.find_elements(By.CSS_SELECTOR, "header .whoami"), f"the {name} page"
            )
            assert out_of_view(browser) == [], f"{name}: header links out of view at 1280 px"
            browser.save_screenshot(str(SCREENSHOTS / f"tour-{language}-{name}-1280.png"))
        # Fifteen pages one after another, as an operator goes through them: none waits for the streams the
        # pages before it opened (the browser keeps six connections to central; a stream left open lingered).
        assert max(took.values()) < 20, took
    finally:
        camera.stop()
