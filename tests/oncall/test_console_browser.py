"""The console in real headless Chromium (Debian's chromium + chromedriver through selenium).

Log in, filter, open a decision, preview a replay and confirm it; an alert label holding
`<script>` renders as text; a form posted without its CSRF token is refused. Screenshots of each
step go to artifacts/console/ (gitignored) for people to look at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import hours, template_images
from tests.binaries import in_ci, require_binary
from tests.oncall.support import ALICE, OnCall, live_server

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
SCRIPT_LABEL = "<script>document.title='pwned'</script>"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    chromium = require_binary("chromium")
    chromedriver = require_binary("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as ChromeService
    except ImportError:
        message = "selenium is not installed (pip install -e .[dev])"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=ChromeService(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_console_login_filter_open_preview_confirm(oncall: OnCall, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    evil = oncall.h.alert(namespace="shop", deployment="evil", note=SCRIPT_LABEL)
    evil["annotations"]["description"] = '<img src=x onerror=alert(1)> & "quotes"'
    [hostile] = oncall.h.post_alerts(evil)

    def find(css: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, css)

    def settled(read: Callable[[Any], Any]) -> Any:
        """What `read(driver)` returns once chromedriver can answer: right after a navigation
        it may say "Node ... does not belong to the document" (seen in CI under load)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        wait = WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,))
        return wait.until(lambda driver: (read(driver),))[0]

    def read_text(xpath: str) -> str:
        text: str = settled(lambda d: d.find_element(By.XPATH, xpath).text)
        return text

    def text(css: str) -> str:
        value: str = settled(lambda d: d.find_element(By.CSS_SELECTOR, css).text)
        return value

    def texts(css: str) -> list[str]:
        values: list[str] = settled(
            lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, css)]
        )
        return values

    def navigate(element: Any) -> None:
        """Click a link or submit button and wait until the next page replaced this one and
        finished loading. The old page is marked with a window property (a new document has
        none): selenium's staleness_of polls an element of the old page, and chromedriver
        sometimes answers that poll with "Node ... does not belong to the document" instead
        of a stale-element error (seen in CI under load)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        browser.execute_script("window.__replacedByNavigation = true")
        element.click()

        def loaded(driver: Any) -> bool:
            return bool(
                driver.execute_script(
                    "return window.__replacedByNavigation === undefined"
                    " && document.readyState === 'complete'"
                )
            )

        WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,)).until(loaded)

    with live_server(oncall.app) as url:
        browser.get(url + "/")
        assert browser.current_url == url + "/login"
        shot(browser, "01-login")
        find("#token").send_keys(ALICE)
        navigate(find("#login"))
        assert text("#actor") == "alice"
        rows = browser.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")
        assert len(rows) == 2
        shot(browser, "02-decisions")

        find("#f-deployment").send_keys("web")
        navigate(find("#apply-filters"))
        rows = texts("#decisions tbody tr")
        assert len(rows) == 1 and "no_recent_rollout" in rows[0]
        shot(browser, "03-filtered")

        navigate(find("#decisions tbody tr a.open"))
        assert text("#decision-id") == skip["id"]
        assert "no_recent_rollout" in text("#outcome")
        shot(browser, "04-decision")

        find("#reason").send_keys("web:2 is the culprit; rollout just outside the window")
        find("#ignore_recent_window").click()
        navigate(find("#preview"))
        assert "would roll back revision 2 -> revision 1" in text("#would")
        assert text("#preview-decisions td.from") == f"revision 2 ({rs[1]})"
        assert text("#preview-decisions td.to") == f"revision 1 ({rs[0]})"
        assert template_images(oncall.h.deployment("shop", "web")) == ["web:2"]  # untouched
        shot(browser, "05-preview")

        navigate(find("#confirm"))
        assert text("#outcome").startswith("rolled_back")
        assert text("#decision-actor") == "alice"
        assert text("#replay-of") == skip["id"]
        assert "replay execute by alice: web:2 is the culprit" in text("#detail")
        assert template_images(oncall.h.deployment("shop", "web")) == ["web:1"]
        shot(browser, "06-rolled-back")

        navigate(find("#replay-of"))
        replays = texts("#replays tbody tr")
        assert [("dry_run" in r, "rolled_back" in r) for r in replays] == [
            (True, False),
            (False, True),
        ]
        shot(browser, "07-original-with-replays")

        # Labels and annotations are text, never markup.
        browser.get(f"{url}/decisions/{hostile['id']}")
        label = read_text("//table[@id='labels']//tr[th='note']/td")
        assert label == SCRIPT_LABEL
        description = read_text("//table[@id='annotations']//tr[th='description']/td")
        assert description == '<img src=x onerror=alert(1)> & "quotes"'
        assert browser.find_elements(By.CSS_SELECTOR, "main script, main img") == []
        assert browser.title != "pwned"
        shot(browser, "08-escaped-labels")

        # A decision no override can change offers no replay form at all.
        assert browser.find_elements(By.CSS_SELECTOR, "#replay-form") == []
        assert "never overridable" in text("#no-replay")

        # The replay form with its CSRF field removed is refused and changes nothing.
        replays_before = len(oncall.h.service.audit.replays_of(skip["id"]))
        browser.get(f"{url}/decisions/{skip['id']}")
        browser.execute_script(
            "document.querySelector('#replay-form input[name=csrf_token]').remove()"
        )
        find("#reason").send_keys("no csrf")
        navigate(find("#preview"))
        assert "CSRF token missing or invalid" in text("#message")
        shot(browser, "09-csrf-refused")
    assert len(oncall.h.service.audit.replays_of(skip["id"])) == replays_before
