"""Rendering the console's pages: Jinja2 templates, autoescaped, under a strict CSP.

Scripts come from this host only (``script-src 'self'``, no inline script): htmx and ECharts
from ``static/vendor/`` (built by scripts/console-assets.sh), the console's own from
``static/``. Inline *styles* are allowed because ECharts positions its tooltips with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "STATIC_DIR",
    "VENDOR_FILES",
    "missing_assets",
    "render",
]

_HERE = Path(__file__).resolve().parent
STATIC_DIR = _HERE / "static"
VENDOR_FILES = ("htmx.min.js", "echarts.min.js")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def missing_assets() -> list[str]:
    """The bundled libraries that are not built (pip installs without npm)."""
    return [name for name in VENDOR_FILES if not (STATIC_DIR / "vendor" / name).is_file()]


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    values = {"request": request, "missing_assets": missing_assets(), **(context or {})}
    html = _env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers={**_HEADERS, **(headers or {})})
