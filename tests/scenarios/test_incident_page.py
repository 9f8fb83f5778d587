"""The pages in a real browser: Debian's Chromium, driven by Selenium through chromium-driver, over the demo's
incident (a bad commit with a hostile subject, blamed and reverted on real git), while the demo's watcher serves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from watcher.demo import BAD_APP, CHANGES, run_demo

CHROMEDRIVER = "/usr/bin/chromedriver"
# A subject written to hurt: markup that would run, and a right-to-left override that would flip what follows.
HOSTILE = f"{BAD_APP}: scale down <script>alert(1)</script> \u202egnp.exe"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not (shutil.which("chromium") and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            "no browser: apt-get install -y --no-install-recommends chromium chromium-driver (scripts/test does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_incident_page_tells_the_demo_story_and_hostile_text_stays_text(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen: dict[str, Any] = {}
    changes = [
        (app, key, value, HOSTILE if app == BAD_APP else subject, who) for app, key, value, subject, who in CHANGES
    ]

    def look(result: dict[str, Any]) -> None:
        bad = next(c for c in result["commits"] if not c["good"])
        browser.get(result["fleet_url"])
        seen["fleet_title"] = browser.title
        seen["apps"] = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.apps tbody td:first-child")]
        browser.save_screenshot(str(shots / "fleet.png"))
        # The fleet lists the incident (resolved by now, so among the recent ones) and links it.
        # the demo's pre-flight act adds a later incident (#2): find the sync failure's row, #1
        rows = browser.find_elements(By.CSS_SELECTOR, "#recent-incidents tbody tr")
        seen["recent"] = next((r.text for r in rows if r.text.startswith("#1 ")), "")
        browser.find_element(By.CSS_SELECTOR, "#recent-incidents a[href='/ui/incidents/1']").click()
        seen["incident_url"] = browser.current_url
        seen["subject"] = browser.find_element(By.CSS_SELECTOR, "#culprits .subject").text
        seen["culprit_sha"] = browser.find_element(By.CSS_SELECTOR, "#culprits .sha").get_attribute("title")
        seen["rule"] = browser.find_element(By.CSS_SELECTOR, "#decision .rule").text
        seen["revert"] = browser.find_element(By.CSS_SELECTOR, "#revert-link .sha").get_attribute("title")
        seen["steps"] = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#story .step strong")]
        seen["scripts"] = len(browser.find_elements(By.TAG_NAME, "script"))
        seen["diff"] = browser.find_element(By.CSS_SELECTOR, "#culprits pre.diff").text
        seen["bad"], seen["revert_sha"] = bad, result["revert"]["sha"]
        try:
            seen["alert"] = browser.switch_to.alert.text
        except NoAlertPresentException:
            seen["alert"] = None
        browser.save_screenshot(str(shots / "incident.png"))
        browser.set_window_size(390, 1800)  # a phone
        browser.save_screenshot(str(shots / "incident-phone.png"))
        seen["phone_overflow"] = browser.execute_script(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )

    run_demo(tmp_path / "demo", hold=look, changes=changes)
    print(f"screenshots: {shots}")

    assert "Fleet" in seen["fleet_title"] and BAD_APP in seen["apps"]
    assert seen["recent"].split()[:3] == ["#1", BAD_APP, "sync_failed"]
    assert seen["incident_url"].endswith("/ui/incidents/1")
    assert seen["culprit_sha"] == seen["bad"]["sha"]
    assert seen["rule"] == "culprit_found"
    assert seen["revert"] == seen["revert_sha"]
    # The hostile subject is shown as the characters it is: the markup as text, the override as its code point.
    assert seen["subject"] == f"{BAD_APP}: scale down <script>alert(1)</script> <U+202E>gnp.exe"
    assert seen["scripts"] == 0 and seen["alert"] is None
    assert "+replicaCount: -1" in seen["diff"]
    assert seen["steps"][0] == "Committed" and "Detected" in seen["steps"] and "Reverted" in seen["steps"]
    assert seen["steps"].index("Detected") < seen["steps"].index("Decided") < seen["steps"].index("Reverted")
    assert not seen["phone_overflow"]  # nothing wider than a phone's screen: tables scroll inside their box
    for name in ("fleet.png", "incident.png", "incident-phone.png"):
        assert (shots / name).stat().st_size > 10_000
