"""The exchange data routes' GET as one lean ASGI step, ahead of FastAPI's router.

``GET /v1/resources/{resource}/{record_id}`` and ``GET /v1/resources/{resource}`` carry nearly
all the traffic. FastAPI's way to them costs more than most controls on the path (issue 18,
docs/performance.md §6): trying the routers in turn, solving the dependency tree,
``ExceptionMiddleware`` and ``AsyncExitStackMiddleware`` around every request. Here a GET of
either path is served directly, inside :class:`~gateway.observability.middleware.GatewayMiddleware`
(request id, limits, metrics, access log):

* matched by the declared routes' own patterns (``APIRoute.path_regex``), so exactly the paths
  FastAPI would send to them; ``scope["route"]`` is that route, as after FastAPI's routing
  (metrics label, refusal entries);
* authenticated in one flat step, :func:`~gateway.auth.deps.audited_caller`, as the routes'
  dependency does;
* served by the one choke point, :meth:`~gateway.exchange.service.ExchangeService.handle`
  (policy decision, audit entry before any data);
* errors rendered by the same handlers FastAPI's exception middleware would use; anything
  unexpected goes on to ``GatewayMiddleware`` (a 500 problem) and the app's error handler.

The routes stay declared in :mod:`gateway.exchange.routes`: the OpenAPI document, and every
other method (a 405, audited) still go through FastAPI.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.deps import audited_caller, bearer_token
from gateway.auth.scopes import Scope as AuthScope
from gateway.errors import (
    DATABASE_UNAVAILABLE,
    GatewayError,
    on_database_error,
    on_gateway_error,
    on_http_error,
)
from gateway.runtime import runtime_of

__all__ = ["PREFIX", "ExchangeEndpoints"]

PREFIX = "/v1/resources/"


class ExchangeEndpoints:
    """Pure ASGI: a GET of ``routes`` (the exchange data routes) served; the rest to ``app``."""

    def __init__(self, app: ASGIApp, *, routes: Iterable[APIRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)
        for route in self.routes:
            # Only paths under the prefix are looked at; the routes take only str parameters.
            assert route.path.startswith(PREFIX), route.path
            assert route.methods == {"GET"}, route.methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = get_route_path(scope)
            if path.startswith(PREFIX):
                for route in self.routes:
                    match = route.path_regex.match(path)
                    if match is not None:
                        await self._serve(route, match.groupdict(), scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def _serve(
        self, route: APIRoute, params: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        for name, value in params.items():
            params[name] = route.param_convertors[name].convert(value)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = params
        request = Request(scope, receive)
        response: Response
        try:
            token = bearer_token(request.headers.get("authorization"))
            caller = await audited_caller(request, AuthScope.EXCHANGE, token)
            exchange = runtime_of(request).exchange
            response = await exchange.handle(
                request, caller, params["resource"], params.get("record_id")
            )
        except GatewayError as exc:
            response = await on_gateway_error(request, exc)
        except StarletteHTTPException as exc:
            response = await on_http_error(request, exc)
        except DATABASE_UNAVAILABLE as exc:
            response = await on_database_error(request, exc)
        await response(scope, receive, send)
