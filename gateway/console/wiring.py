"""Building the console into a runtime and an app."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from gateway.audit.aggregate import FailedSignIns
from gateway.auth.authorize import router as authorize_router
from gateway.auth.users import USER_PREFIX
from gateway.console.audit_pages import router as audit_pages_router
from gateway.console.audit_stats import router as audit_stats_router
from gateway.console.control_pages import router as control_pages_router
from gateway.console.delivery_pages import router as delivery_pages_router
from gateway.console.explain_page import router as explain_page_router
from gateway.console.guard import install_console_handlers
from gateway.console.pages import router as pages_router
from gateway.console.parts import ConsoleParts
from gateway.console.policy_pages import router as policy_pages_router
from gateway.console.sessions import SessionStore
from gateway.console.sharing_pages import router as sharing_pages_router
from gateway.console.templating import STATIC_DIR
from gateway.runtime import Runtime

__all__ = ["attach_console", "mount_console"]


def attach_console(runtime: Runtime) -> ConsoleParts:
    settings = runtime.settings
    parts = ConsoleParts(
        sessions=SessionStore(runtime.session_factory, settings.console_session_minutes),
        sign_in_failures=FailedSignIns(
            runtime.audit_writer,
            agency_of=lambda claimed: parts.agencies.get(claimed.removeprefix(USER_PREFIX)),
            interval_s=settings.aggregate_interval_seconds,
            max_keys=settings.aggregate_max_keys,
        ),
    )
    runtime.console = parts
    return parts


def mount_console(app: FastAPI) -> None:
    """The sign-in endpoint, the pages, and the static files (present or not: the pages say
    what to run when the bundled libraries are missing)."""
    app.include_router(authorize_router)
    app.include_router(pages_router)
    app.include_router(policy_pages_router)
    app.include_router(control_pages_router)
    app.include_router(explain_page_router)
    app.include_router(audit_stats_router)
    app.include_router(audit_pages_router)
    app.include_router(sharing_pages_router)
    app.include_router(delivery_pages_router)
    app.mount(
        "/console/static",
        StaticFiles(directory=STATIC_DIR, check_dir=False),
        name="console-static",
    )
    install_console_handlers(app)
