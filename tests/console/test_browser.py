"""The console in a real browser: Debian's chromium driven by Playwright (no browser
download), against a gateway served on a loopback port.

Covered: sign-in (a wrong password, then the right one, by keyboard), propose → review →
approve by a second person with the self-approval refused, the impact chart, an audit query
and the in-browser proof check (and a tampered proof that fails); a reviewer's deliveries with
the overdue filter, and the regulator's overdue-deliveries chart. Every page: no JavaScript
console error, no failed or foreign request, every form field labelled, no horizontal scroll at
1366×768. With GATEWAY_TEST_SCREENSHOTS=DIR the main pages are saved there as PNG.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.checkpoint import CheckpointSigner, parse_checkpoint_body
from gateway.console.templating import missing_assets
from tests.conftest import IN_CI
from tests.console.conftest import PASSWORD, TOTP, add_users_and_an_application
from tests.served import ServedGateway, served_gateway

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
SHOTS = os.environ.get("GATEWAY_TEST_SCREENSHOTS")
VIEWPORT = {"width": 1366, "height": 768}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    if not CHROMIUM.is_file():
        message = f"no chromium at {CHROMIUM} (apt-get install chromium; make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    missing = missing_assets()
    if missing:
        message = f"the console's assets are not built ({missing}): run scripts/console-assets.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("console-browser")
    # Plain http on loopback: the explicit development setting drops Secure from the cookies.
    with served_gateway(
        tmp,
        before_serving=add_users_and_an_application,
        console_insecure_loopback_cookies=True,
        checkpoint_interval_seconds=0.2,
    ) as served:
        yield served


@pytest.fixture(scope="module")
def browser(gateway: ServedGateway) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), chromium_sandbox=False, args=["--headless=new"]
        )
        try:
            yield launched
        finally:
            launched.close()


class Watched:
    """A page whose console errors, failed and foreign requests are collected."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith((base_url + "/", "data:", "blob:"))
                else self.foreign.append(r.url)
            ),
        )

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path, wait_until="networkidle")

    def check(self, shot: str | None = None) -> None:
        """The page as it stands: labelled fields, fits the screen, nothing went wrong."""
        page = self.page
        page.wait_for_load_state("networkidle")
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(el => el.type !== 'hidden' && el.labels.length === 0)
                .map(el => el.name || el.id)"""
        )
        assert unlabelled == [], (page.url, unlabelled)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= VIEWPORT["width"], (page.url, width)
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        assert self.errors == [], (page.url, self.errors)
        assert self.failed == [], (page.url, self.failed)
        assert self.foreign == [], (page.url, self.foreign)
        if shot and SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOTS) / f"{shot}.png"))

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        """By keyboard only: the user name field has the focus, Tab to the password, Tab to the
        TOTP code (the user's current one with the right password), Enter."""
        self.goto("/console/")
        assert "/oauth/authorize" in self.page.url
        self.page.keyboard.type(username)
        self.page.keyboard.press("Tab")
        self.page.keyboard.type(password)
        self.page.keyboard.press("Tab")
        self.page.keyboard.type(TOTP.code(username) if password == PASSWORD else "")
        with self.page.expect_navigation():
            self.page.keyboard.press("Enter")
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any, gateway: ServedGateway) -> Iterator[Any]:
    opened: list[Watched] = []

    def make() -> Watched:
        opened.append(Watched(browser, gateway.base_url))
        return opened[-1]

    yield make
    for w in opened:
        w.close()


def test_sign_in_with_a_wrong_then_the_right_password(watched: Any) -> None:
    w = watched()
    w.sign_in("zhang", "a wrong password!")
    assert w.page.locator("#signin-error").inner_text() == "用户名、密码或动态口令不正确。"
    w.errors.clear()  # the browser logs the 401 of the form post; the page says why
    w.check("signin")
    w.page.get_by_label("用户名").fill("zhang")
    w.page.get_by_label("密码", exact=True).fill(PASSWORD)
    w.page.get_by_label("动态口令（如已启用）").fill(TOTP.code("zhang"))
    with w.page.expect_navigation():
        w.page.get_by_role("button", name="登录").click()
    w.page.wait_for_load_state("networkidle")
    assert w.page.url.endswith("/console/")
    assert "张管理" in w.page.locator("header").inner_text()
    w.check("home")


def test_propose_review_and_approve_by_a_second_person(watched: Any) -> None:
    zhang = watched()
    zhang.sign_in("zhang")
    zhang.goto("/console/policies")
    zhang.check("policies")
    with zhang.page.expect_navigation():
        zhang.page.get_by_role("link", name="fy.trial.case-file").click()
    zhang.page.wait_for_load_state("networkidle")
    assert "刑事诉讼法 第186条" in zhang.page.locator("main").inner_text()
    zhang.check("rule")
    zhang.goto("/console/policies/propose?file=permissions/court.yaml")
    editor = zhang.page.get_by_label("permissions/court.yaml 的内容（YAML）")
    original = editor.input_value()
    editor.fill(original.replace("resource: case\n", "resource: no_such_resource\n", 1))
    zhang.page.get_by_label("变更说明").fill("错误的资源名")
    with zhang.page.expect_navigation():
        zhang.page.get_by_role("button", name="提交候选版本").click()
    zhang.page.wait_for_load_state("networkidle")
    where = zhang.page.locator("#problems code.where").first.inner_text()
    assert re.fullmatch(r"permissions/court\.yaml:\d+:\d+", where), where
    zhang.errors.clear()  # the 422 of the post, shown on the page
    zhang.check("propose-errors")
    editor = zhang.page.get_by_label("permissions/court.yaml 的内容（YAML）")
    editor.fill(original.replace("description: 法院", "description: 人民法院（控制台）", 1))
    zhang.page.get_by_label("变更说明").fill("说明改为人民法院")
    with zhang.page.expect_navigation():
        zhang.page.get_by_role("button", name="提交候选版本").click()
    zhang.page.wait_for_load_state("networkidle")
    assert "候选版本已提交" in zhang.page.locator("h1").inner_text()
    zhang.check("submitted")
    with zhang.page.expect_navigation():
        zhang.page.locator("#submitted a").first.click()
    zhang.page.wait_for_load_state("networkidle")
    version_url = zhang.page.url
    zhang.page.get_by_role("button", name="以最近 1000 个请求回放").click()
    zhang.page.locator("#impact-chart svg").wait_for(timeout=20_000)
    zhang.check("version")
    zhang.page.get_by_label("审核意见").fill("我自己批准")
    with zhang.page.expect_navigation():
        zhang.page.get_by_role("button", name="批准并发布").click()
    zhang.page.wait_for_load_state("networkidle")
    assert "不能审核自己提出的候选版本" in zhang.page.locator("#review-problem").inner_text()
    zhang.errors.clear()  # the 403 of the post, shown on the page
    zhang.check("self-approval-refused")

    li = watched()
    li.sign_in("li")
    li.page.goto(version_url, wait_until="networkidle")
    li.page.get_by_label("审核意见").fill("同意")
    with li.page.expect_navigation():
        li.page.get_by_role("button", name="批准并发布").click()
    li.page.wait_for_load_state("networkidle")
    assert "已批准，并已发布生效" in li.page.locator("#review-result").inner_text()
    li.check("approved")
    li.goto("/console/policies/explain")
    with li.page.expect_navigation():
        li.page.get_by_role("button", name="解释").click()
    li.page.locator("#explained").wait_for(timeout=20_000)
    li.check("explain")
    li.goto("/console/policies/history")
    assert "user:li" in li.page.locator("#versions").inner_text()
    li.check("history")


def _tamper(route: Any) -> None:
    response = route.fetch()
    body = response.json()
    first = bytearray(base64.b64decode(body["leaf"]))
    first[-2] ^= 0x01  # one bit of the entry's bytes
    body["leaf"] = base64.b64encode(bytes(first)).decode()
    route.fulfill(response=response, body=json.dumps(body))


def _signer_with_plus() -> CheckpointSigner:
    """A checkpoint key whose base64 has a "+" (about one in five; the parser once split on it)."""
    while True:
        signer = CheckpointSigner.generate("zhengfa-gateway.local/audit")
        if "+" in signer.verifier_text().split("+", 2)[2]:
            return signer


def _resign(route: Any) -> None:
    """The same tree head, signed by another key whose text has a "+" in its base64."""
    response = route.fetch()
    body = response.json()
    origin, size, root, _ = parse_checkpoint_body(body["checkpoint"].split("\n\n")[0] + "\n")
    signer = _signer_with_plus()
    body["checkpoint"] = signer.sign_checkpoint(origin, size, root)
    body["verifier_key"] = signer.verifier_text()
    route.fulfill(response=response, body=json.dumps(body))


def test_any_verifier_key_text_is_read(watched: Any) -> None:
    wang = watched()
    wang.sign_in("wang")
    wang.page.wait_for_timeout(600)  # the checkpointer signs every 0.2 s
    wang.page.route("**/console/audit/entries/1/proof", _resign)
    wang.goto("/console/audit/entries/1")
    result = wang.page.locator("#proof-result")
    result.and_(wang.page.locator(":not([data-state='pending'])")).wait_for(timeout=20_000)
    assert result.get_attribute("data-state") == "ok", result.inner_text()
    assert "+" in wang.page.locator("#verifier-key").inner_text().split("+", 2)[2]


def test_audit_query_and_the_proof_checked_in_the_browser(watched: Any) -> None:
    wang = watched()
    wang.sign_in("wang")
    wang.goto("/console/audit")
    wang.page.get_by_label("决定").select_option("allow")
    with wang.page.expect_navigation():
        wang.page.get_by_role("button", name="查询").click()
    wang.page.wait_for_load_state("networkidle")
    assert wang.page.locator("#entries tbody tr").count() >= 1
    wang.check("audit")
    wang.goto("/console/audit/stats")
    wang.page.locator("#requests-chart svg").wait_for(timeout=20_000)
    wang.page.locator("#denials-chart svg").wait_for(timeout=20_000)
    wang.check("stats")
    wang.goto("/console/audit/alerts")
    wang.check("alerts")
    wang.page.wait_for_timeout(600)  # the checkpointer signs every 0.2 s
    wang.goto("/console/audit/entries/1")
    result = wang.page.locator("#proof-result")
    result.and_(wang.page.locator(":not([data-state='pending'])")).wait_for(timeout=20_000)
    assert result.get_attribute("data-state") == "ok", (
        result.inner_text(),
        wang.page.locator("#checkpoint-note").inner_text(),
        wang.page.locator("#verifier-key").inner_text(),
    )
    assert "校验通过" in result.inner_text()
    assert wang.page.locator("#check-signature").get_attribute("data-state") == "ok"
    wang.check("entry-verified")

    tampered = watched()
    tampered.sign_in("wang")
    tampered.page.route("**/console/audit/entries/1/proof", _tamper)
    tampered.goto("/console/audit/entries/1")
    failed = tampered.page.locator("#proof-result")
    failed.and_(tampered.page.locator(":not([data-state='pending'])")).wait_for(timeout=20_000)
    assert failed.get_attribute("data-state") == "failed", failed.inner_text()
    assert "校验失败" in failed.inner_text()
    # The signature is still good: it is the entry that does not belong to the signed tree.
    assert tampered.page.locator("#check-signature").get_attribute("data-state") == "ok"
    assert tampered.page.locator("#check-inclusion").get_attribute("data-state") == "failed"
    tampered.check("entry-tampered")


def test_a_regulator_is_refused_the_admin_pages(watched: Any) -> None:
    wang = watched()
    wang.sign_in("wang")
    response = wang.page.goto(wang.base_url + "/console/policies", wait_until="networkidle")
    assert response.status == 403
    assert "无权访问" in wang.page.locator("h1").inner_text()
    wang.errors.clear()  # the browser logs the 403 itself
    wang.check("forbidden")


def test_a_reviewer_answers_an_application(watched: Any) -> None:
    sun = watched()
    sun.sign_in("sun")
    sun.goto("/console/sharing")
    assert "FY640104 申请 person" in sun.page.locator("main").inner_text()
    sun.check("sharing")
    sun.page.get_by_label("意见或拒绝理由").first.fill("与本案无关")
    with sun.page.expect_navigation():
        sun.page.get_by_role("button", name="拒绝").first.click()
    sun.page.wait_for_load_state("networkidle")
    assert "已拒绝" in sun.page.locator("main").inner_text()
    sun.check("sharing-refused")


def test_a_reviewer_reads_the_agency_deliveries(watched: Any) -> None:
    zhou = watched()  # the court's reviewer: two indictments received (one overdue), one sent
    zhou.sign_in("zhou")
    zhou.goto("/console/deliveries")
    assert "请选择查阅用途" in zhou.page.locator("main").inner_text()
    zhou.check()
    zhou.page.get_by_label("查阅用途").select_option("TRIAL")
    with zhou.page.expect_navigation():
        zhou.page.get_by_role("button", name="查询").click()
    rows = zhou.page.locator("#deliveries tbody tr")
    assert rows.count() == 2
    zhou.check("deliveries")
    zhou.page.get_by_label("只看已超期").check()
    with zhou.page.expect_navigation():
        zhou.page.get_by_role("button", name="查询").click()
    assert rows.count() == 1
    assert "已超期" in rows.first.inner_text()
    zhou.check("deliveries-overdue")
    with zhou.page.expect_navigation():
        rows.first.get_by_role("link").click()
    main = zhou.page.locator("main").inner_text()
    assert "JC640104 → FY640104" in main
    assert "尚未签收或退回" in main
    zhou.check("delivery")
    zhou.goto("/console/deliveries?purpose=TRIAL&role=outbound")
    assert "GA640104" in zhou.page.locator("#deliveries").inner_text()
    zhou.check()


def test_a_regulator_sees_the_overdue_deliveries_chart(watched: Any) -> None:
    wang = watched()
    wang.sign_in("wang")
    wang.goto("/console/audit/stats")
    wang.page.locator("#overdue-chart svg").wait_for(timeout=10_000)
    assert "FY640104" in wang.page.locator("#delivery-stats").inner_text()
    wang.page.locator("#overdue-chart").scroll_into_view_if_needed()
    wang.check("stats-deliveries")
