"""The page per Deployment in real headless Chromium: current revision, revisions with images,
bad mark, cooldown with its end, the circuit breaker, the SVG timeline; decision pages with the
images rolled back from and to; replay previews apart from decisions; the resume button that
hands a paused Flux owner back; every page readable at 390 px (no horizontal overflow).
Screenshots go to artifacts/console/ (gitignored)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.oncall.support import ALICE, OnCall, live_server
from tests.oncall.test_console_browser import ARTIFACTS, browser, shot  # noqa: F401 - fixture

pytestmark = pytest.mark.browser

V1, V2, V3 = "registry.local/web:1.0", "registry.local/web:1.1", "registry.local/web:1.2"
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


def _story(oncall: OnCall) -> dict[str, Any]:
    """v1 for hours, v2 three minutes ago and crash-looping: rolled back (v1 is revision 3);
    a fix, v3, rolls out and alerts too, within the cooldown; a preview of a replay of that;
    an alert about a Deployment that does not exist."""
    h = oncall.h
    rs = h.deploy("web", [(V1, hours(3)), (V2, minutes(3))])
    [rolled] = h.post_alerts(h.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    assert rolled["outcome"] == "rolled_back", rolled
    assert template_images(h.deployment("shop", "web")) == [V1]
    rs = h.deploy("web", [(V3, minutes(0))])
    time.sleep(1.1)  # creation times have whole seconds: the alert starts after the rollout
    again = h.alert(namespace="shop", deployment="web", replicaset=rs[-1], started_ago=timedelta())
    [cooling] = h.post_alerts(again)
    assert cooling["reason"] == "cooldown", cooling
    status, preview = oncall.replay(
        {
            "audit_id": cooling["id"],
            "reason": "is the cooldown what holds it?",
            "dry_run": True,
            "overrides": {"ignore_cooldown": True},
        }
    )
    assert status == 200, preview
    [gone] = h.post_alerts(h.alert(namespace="shop", deployment="gone"))
    return {"rolled": rolled, "cooling": cooling, "preview": preview, "gone": gone}


@pytest.fixture
def oncall(sandbox: SandboxHandle, tmp_path: Path) -> OnCall:
    """The full app, with a patient Kubernetes timeout (the page reads a lot on a busy CI)."""
    return OnCall(Harness(sandbox, tmp_path, kubernetes={"timeout_seconds": 15}))


def _wait(driver: Any, condition: Any) -> Any:
    """WebDriverWait for `condition`, asking again when chromedriver answers a poll made while
    a page is replaced with an error ("Node ... does not belong to the document", seen in CI
    under load) instead of an answer."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,)).until(condition)


def _complete(driver: Any) -> bool:
    return bool(driver.execute_script("return document.readyState") == "complete")


def _login(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/login")
    driver.find_element(By.CSS_SELECTOR, "#token").send_keys(ALICE)
    driver.find_element(By.CSS_SELECTOR, "#login").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#actor") and _complete(d))


def _open(driver: Any, url: str) -> None:
    driver.get(url)
    _wait(driver, _complete)


def full_shot(driver: Any, name: str, *, width: int) -> None:
    """A screenshot of the whole page at `width` CSS pixels (artifacts/console/NAME.png)."""
    import base64

    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {**PHONE, "width": width, "height": height, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
    finally:
        if width < 600:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
        else:
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(data))


def _overflow(driver: Any) -> int:
    width: int = driver.execute_script("return document.documentElement.scrollWidth")
    return width


def test_deployment_page_timeline_and_phone_width(oncall: OnCall, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    story = _story(oncall)
    rolled, cooling = story["rolled"], story["cooling"]

    def text(css: str) -> str:
        value: str = browser.find_element(By.CSS_SELECTOR, css).text
        return value

    def all_text(css: str) -> list[str]:
        return [e.text for e in browser.find_elements(By.CSS_SELECTOR, css)]

    with live_server(oncall.app) as url:
        _login(browser, url)
        # The list: previews apart, Deployments linked.
        assert len(browser.find_elements(By.CSS_SELECTOR, "#previews tbody tr")) == 1
        assert not any("replay" in row for row in all_text("#decisions tbody tr"))
        shot(browser, "10-decisions-with-previews-apart")

        _open(browser, f"{url}/deployments/shop/web")
        assert text("#deployment-name") == "shop/web"
        assert "rev 4" in text("#current") and V3 in text("#current")
        rev3, rev2 = text("#rev-3"), text("#rev-2")
        # v1 came back as revision 3 (its ReplicaSet re-adopted), then v3 replaced it.
        assert V1 in rev3 and "re-adopted from 1" in rev3
        assert V2 in rev2 and "bad mark: restart_rate" in rev2
        # Cooldown: on, with the time it ends (the rollback's time + cooldown).
        acted = datetime.fromisoformat(rolled["time"])
        ends = browser.find_element(By.CSS_SELECTOR, "#cooldown time").get_attribute("datetime")
        assert abs(datetime.fromisoformat(ends) - (acted + timedelta(hours=1))) < timedelta(
            seconds=2
        )
        assert text("#cooldown").startswith("Cooldown\nin cooldown")
        assert "closed: 1 of 5 rollbacks" in text("#circuit")
        assert "owner: none found" in text("#gitops")
        # The timeline: server-rendered SVG, no scripts anywhere on the page.
        svg = browser.find_element(By.CSS_SELECTOR, "#timeline")
        assert svg.tag_name == "svg"
        # v1, v2, v1 again (one lane, two spans), v3.
        assert len(svg.find_elements(By.CSS_SELECTOR, "rect.span")) == 4
        assert len(svg.find_elements(By.CSS_SELECTOR, "g.rollback")) == 1
        assert len(svg.find_elements(By.CSS_SELECTOR, "g.bad")) == 1
        assert len(svg.find_elements(By.CSS_SELECTOR, "circle.alert")) == 2
        assert browser.find_elements(By.CSS_SELECTOR, "script") == []
        # Decisions and the replay preview, apart.
        assert len(browser.find_elements(By.CSS_SELECTOR, "#deployment-decisions tbody tr")) == 2
        # The preview with ignore_cooldown: past the cooldown no healthy revision is left.
        preview = text("#deployment-previews tbody tr")
        assert "(dry run) no_healthy_revision" in preview and "alice" in preview
        full_shot(browser, "11-deployment", width=1280)

        _open(browser, f"{url}/decisions/{rolled['id']}")
        assert rolled["from_replicaset"] in text("#from-revision")
        assert V2 in text("#from-revision") and V1 in text("#to-revision")
        assert browser.find_elements(By.CSS_SELECTOR, "#replay-form") == []
        assert "already rolled the Deployment back" in text("#no-replay")
        shot(browser, "12-decision-images")

        _open(browser, f"{url}/decisions/{cooling['id']}")
        assert "in cooldown" in text("#cooldown-ends") and "UTC" in text("#cooldown-ends")
        assert browser.find_elements(By.CSS_SELECTOR, "#ignore_cooldown")  # an override helps
        shot(browser, "13-cooldown-skip")

        # Phone width: every page fits, nothing scrolls sideways but the timeline's own box.
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
        try:
            pages = {
                "14-phone-decisions": "/",
                "15-phone-deployment": "/deployments/shop/web",
                "16-phone-decision": f"/decisions/{rolled['id']}",
                "17-phone-cooldown-skip": f"/decisions/{cooling['id']}",
                "18-phone-gone": f"/decisions/{story['gone']['id']}",
            }
            for name, path in pages.items():
                _open(browser, url + path)
                wide = browser.execute_script(
                    "return [...document.querySelectorAll('body *')]"
                    ".filter(e => !e.closest('.scroll'))"  # the timeline scrolls in its box
                    ".filter(e => e.getBoundingClientRect().right > 391)"
                    ".map(e => e.tagName + '.' + e.className + '#' + e.id + ' '"
                    " + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"
                )
                assert wide == [], (path, wide)
                assert browser.execute_script("return window.innerWidth") == 390
                assert _overflow(browser) <= 390, (path, _overflow(browser))
                full_shot(browser, name, width=390)
        finally:
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_resume_button_hands_a_paused_flux_owner_back(oncall: OnCall, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    from tests.gitops.support import FLUX_KUSTOMIZATION, deploy_owned, events
    from webhook.gitops import ANNOTATION_GITOPS_PAUSED

    h = oncall.h
    _, v2 = deploy_owned(h, "web", [(V1, hours(2)), (V2, minutes(3))], FLUX_KUSTOMIZATION)
    [rolled] = h.post_alerts(h.alert(namespace="shop", deployment="web", replicaset=v2))
    assert rolled["outcome"] == "rolled_back", rolled
    assert ANNOTATION_GITOPS_PAUSED in h.deployment("shop", "web")["metadata"]["annotations"]

    with live_server(oncall.app) as url:
        _login(browser, url)
        _open(browser, f"{url}/deployments/shop/web")
        assert (
            "paused Flux Kustomization flux-system/apps"
            in browser.find_element(By.CSS_SELECTOR, "#gitops").text
        )
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
        try:
            _open(browser, f"{url}/deployments/shop/web")
            assert _overflow(browser) <= 390  # the form fits a phone too
            full_shot(browser, "19-phone-resume-form", width=390)
        finally:
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        _open(browser, f"{url}/deployments/shop/web")
        browser.find_element(By.CSS_SELECTOR, "#resume-reason").send_keys("Git reverted to 1.0")
        browser.find_element(By.CSS_SELECTOR, "#resume").click()
        _wait(
            browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#resume-outcome") and _complete(d)
        )
        outcome = browser.find_element(By.CSS_SELECTOR, "#resume-outcome").text
        assert outcome.startswith("resumed by alice: alice: Git reverted to 1.0 | resumed Flux")
        assert browser.find_elements(By.CSS_SELECTOR, "#resume-form") == []
        assert "resumed" in browser.find_element(By.CSS_SELECTOR, "#deployment-decisions").text
        full_shot(browser, "20-resumed", width=1280)

    assert ANNOTATION_GITOPS_PAUSED not in h.deployment("shop", "web")["metadata"]["annotations"]
    [row] = [
        r for r in h.service.audit.query(namespace="shop", limit=20) if r["source"] == "resume"
    ]
    assert row["outcome"] == "resumed" and row["actor"] == "alice"
    assert len(events(h, "AutoRollbackResumed")) == 1


def test_unknown_deployment_page_is_a_404(oncall: OnCall) -> None:
    from tests.oncall.test_console_http import login

    login(oncall)
    response = oncall.client.get("/deployments/shop/nothing")
    assert response.status_code == 404
    assert "no Deployment shop/nothing" in response.get_data(as_text=True)
    assert oncall.client.get("/deployments/shop/nothing").headers["X-Frame-Options"] == "DENY"
