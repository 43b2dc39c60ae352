"""Debian's headless Chromium for the page's browser tests: start one, wait for what a live page shows, log in,
click what it may redraw, answer its confirmations. Screenshots go to artifacts/screenshots (kept by CI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.web import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def chromium(width: int = 1440, height: int = 900):
    """A headless Chromium driver; skips the test where Debian's chromium and chromium-driver are missing."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_path):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--autoplay-policy=no-user-gesture-required",  # the clip tests press play from a script
    ):
        options.add_argument(argument)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    return driver


def wait_until(driver, condition, what: str, timeout_s: float = 20.0):
    """``condition(driver)``'s first truthy answer; a screenshot and a clear failure if it never comes."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1, ignored_exceptions=ignored).until(
            condition
        )
    except Exception:
        driver.save_screenshot(str(SCREENSHOTS / f"failed-{what.replace(' ', '-')}.png"))
        raise AssertionError(f"the page never showed {what}") from None


def log_in(driver, url: str, username: str, password: str = PASSWORD) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "header .whoami"), "the page after log-in")


def click(driver, css: str, what: str) -> None:
    """Click what the live page may redraw at any moment: again if it went stale."""
    from selenium.webdriver.common.by import By

    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True, what)


def confirmation(driver, timeout_s: float = 20.0):
    """The page's confirm() dialog, once it is open."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(expected_conditions.alert_is_present())
