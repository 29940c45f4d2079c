"""Logout in real Chromium ends the session on the server: the cookie the browser held, put
back by hand (or replayed by anyone who copied it), opens nothing."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.oncall.support import ALICE, OnCall, live_server
from tests.oncall.test_console_browser import browser  # noqa: F401  (the Chromium fixture)
from webhook.console import SESSION_COOKIE

pytestmark = pytest.mark.browser


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def status_with_cookie(url: str, cookie: str) -> tuple[int, str]:
    """GET `url` with only this session cookie, not following redirects."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", "")


def test_logout_in_chromium_ends_the_session_on_the_server(
    oncall: OnCall,
    browser: Any,  # noqa: F811
) -> None:
    def at(path: str) -> bool:
        loaded = browser.execute_script("return document.readyState") == "complete"
        return loaded and bool(browser.current_url.endswith(path))

    def wait_at(path: str) -> None:
        # Polls made while the page is replaced may be answered with an error ("Node ... does
        # not belong to the document", seen in CI under load): asked again.
        WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,)).until(
            lambda _: at(path)
        )

    with live_server(oncall.app) as url:
        browser.get(url + "/login")
        browser.find_element(By.CSS_SELECTOR, "#name").send_keys("alice")
        browser.find_element(By.CSS_SELECTOR, "#token").send_keys(ALICE)
        browser.find_element(By.CSS_SELECTOR, "#login").click()
        wait_at("/")
        assert browser.find_element(By.CSS_SELECTOR, "#actor").text == "alice"
        copied = browser.get_cookie(SESSION_COOKIE)
        assert copied is not None and copied["httpOnly"] and copied["secure"]
        assert status_with_cookie(url + "/", copied["value"])[0] == 200

        browser.find_element(By.CSS_SELECTOR, "#logout").click()
        wait_at("/login")
        assert browser.get_cookie(SESSION_COOKIE) is None

        # The browser is given its old cookie back: still logged out.
        browser.add_cookie(
            {
                "name": SESSION_COOKIE,
                "value": copied["value"],
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "Strict",
            }
        )
        browser.get(url + "/")
        wait_at("/login")
        # And anyone replaying the copied cookie over HTTP is sent to the login page.
        status, location = status_with_cookie(url + "/", copied["value"])
        assert status == 302 and location.endswith("/login")
