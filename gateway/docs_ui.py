"""/docs (Swagger UI) and /redoc (ReDoc), served with no network: 政法专网 has no internet.

FastAPI's own pages load their scripts, styles and fonts from a CDN. These load them from
the package ``fastapi-offline`` (PyPI), which ships the Swagger UI bundle and ReDoc's
standalone bundle as package data; they are served under ``/docs-assets/`` and nothing on
either page names another host. A Content-Security-Policy keeps it so: the browser itself
refuses anything from elsewhere. Two things in the bundles would still reach out, and are
turned off: Swagger UI's online validator badge (``validatorUrl: null``) and the Redocly logo
ReDoc's menu loads from its CDN (its URL is replaced by an empty ``data:`` image when the
bundle is served; ReDoc then leaves the image out).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

__all__ = ["ASSETS_PATH", "CONTENT_SECURITY_POLICY", "install_docs"]

ASSETS_PATH = "/docs-assets"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
# Inline scripts: the pages' own start-up code. blob: workers: ReDoc's search. data: images:
# Swagger UI's icons.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
# What a bundle would fetch from elsewhere, and what it gets instead.
_OUTBOUND = {"redoc.standalone.js": {b"https://cdn.redoc.ly/redoc/logo-mini.svg": b"data:,"}}


def _assets_directory() -> Path:
    directory = Path(str(files("fastapi_offline") / "static"))
    missing = [name for name in ASSET_FILES if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(f"the API docs assets are incomplete in {directory}: {missing}")
    return directory


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect and /redoc from the installed assets.

    The app must be made with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages off).
    """
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    directory = _assets_directory()
    title = app.title
    for name, replacements in _OUTBOUND.items():
        _serve_without_outbound_urls(app, directory / name, replacements)
    app.mount(ASSETS_PATH, StaticFiles(directory=directory), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} · Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            # No badge from validator.swagger.io: the page must not reach out.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers.update(_HEADERS)
        return page

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        page = get_swagger_ui_oauth2_redirect_html()
        page.headers.update(_HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} · ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(_HEADERS)
        return page


def _serve_without_outbound_urls(
    app: FastAPI, path: Path, replacements: dict[bytes, bytes]
) -> None:
    """Serve the bundle at ``path`` with its outbound URLs replaced (before the static mount,
    which would serve it unchanged)."""
    body = path.read_bytes()
    for outbound, local in replacements.items():
        body = body.replace(outbound, local)
    media_type = "text/javascript; charset=utf-8"

    @app.get(f"{ASSETS_PATH}/{path.name}", include_in_schema=False)
    async def bundle() -> Response:
        return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=3600"})
