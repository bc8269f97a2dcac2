"""/docs and /redoc work with no network: every asset comes from this host, from the package.

The first tests read the pages and the assets as any client would; the last one has Debian's
chromium (driven by Playwright, no browser download) render both pages, records every request
the browser makes, and keeps a screenshot of each.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.docs_ui import ASSET_FILES, ASSETS_PATH, CONTENT_SECURITY_POLICY
from tests.conftest import IN_CI, Gateway
from tests.served import ServedGateway, served_gateway

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
PAGES = ["/docs", "/redoc", "/docs/oauth2-redirect"]
_REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.mark.parametrize("path", PAGES)
def test_page_names_no_other_host(sqlite_gateway: Gateway, path: str) -> None:
    response = sqlite_gateway.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    html = response.text
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE), html
    for match in _REFERENCE.finditer(html):
        reference = match.group(1) or match.group(2)
        assert reference.startswith("/"), reference
        assert not reference.startswith("//"), reference
        if reference.startswith(ASSETS_PATH):
            assert sqlite_gateway.client.get(reference).status_code == 200, reference


def test_every_asset_is_served_from_the_package(sqlite_gateway: Gateway) -> None:
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for name in ASSET_FILES:
        response = sqlite_gateway.client.get(f"{ASSETS_PATH}/{name}")
        assert response.status_code == 200, name
        assert kinds[Path(name).suffix] in response.headers["content-type"]
        assert len(response.content) > 1000
    assert sqlite_gateway.client.get(f"{ASSETS_PATH}/../pyproject.toml").status_code == 404
    assert sqlite_gateway.client.get(f"{ASSETS_PATH}/nope.js").status_code == 404
    # The pages are not API operations: the OpenAPI document does not list them.
    paths = sqlite_gateway.client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc", "/docs/oauth2-redirect"} & set(paths)


# --- a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    with served_gateway(tmp_path_factory.mktemp("docs-ui")) as gateway:
        yield gateway


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".swagger-ui .info .title"),
        ("/redoc", ".api-info h1"),
    ],
)
def test_pages_render_offline_in_chromium(
    browser_gateway: ServedGateway, path: str, rendered: str, tmp_path: Path
) -> None:
    if not CHROMIUM.is_file():
        message = f"no chromium at {CHROMIUM} (apt-get install chromium; make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    requested: list[str] = []
    failed: list[str] = []
    console_errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), chromium_sandbox=False, args=["--headless=new"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.goto(browser_gateway.base_url + path, wait_until="networkidle")
            title = page.locator(rendered).first
            title.wait_for(timeout=30_000)
            assert "数据共享网关" in title.inner_text()
            shot = tmp_path / f"{path.strip('/')}.png"
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    keep = os.environ.get("GATEWAY_TEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    foreign = [
        url
        for url in requested
        if not url.startswith(browser_gateway.base_url + "/")
        and not url.startswith(("data:", "blob:"))
    ]
    assert foreign == [], foreign
    assert any(url.endswith("/openapi.json") for url in requested)
    assert failed == []
    assert console_errors == []
