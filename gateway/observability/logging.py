"""Structured JSON logs that carry the request id and never secrets or tokens."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from gateway.observability.context import request_id_var

__all__ = ["configure_logging", "enabled_for", "redact"]

_SECRET_KEYS = re.compile(
    r"(secret|password|token|authorization|api[_-]?key|private|credential)", re.IGNORECASE
)
_BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# 公民身份号码 (GB 11643, 18 characters; the old 15-digit form too) inside any text, e.g. an
# agency's error message quoting the record it refused.
_CITIZEN_ID = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")


# A necessary condition for any of the three patterns above to match a string: one search
# instead of three substitutions on each value (most values, e.g. every access-log value,
# match none). Under the same IGNORECASE folding as _BEARER, so no spelling it takes is missed;
# a string that passes goes through the three substitutions exactly as before.
_MAYBE_SENSITIVE = re.compile(r"bearer|basic|eyJ|[0-9]{15}", re.IGNORECASE)
# The verdict of _SECRET_KEYS per key name: log keys are names in the code, a small set.
_secret_keys: dict[str, bool] = {}
_SECRET_KEYS_CACHED = 1024


def _is_secret_key(key: str) -> bool:
    secret = _SECRET_KEYS.search(key) is not None
    if len(_secret_keys) < _SECRET_KEYS_CACHED:
        _secret_keys[key] = secret
    return secret


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop values of secret-looking keys; scrub bearer tokens, JWTs and ID numbers from text."""
    for key, value in list(event.items()):
        secret = _secret_keys.get(key)
        if secret is None:
            secret = _is_secret_key(key)
        if secret:
            event[key] = "[redacted]"
        elif isinstance(value, str) and _MAYBE_SENSITIVE.search(value):
            value = _JWT.sub("[jwt]", _BEARER.sub(r"\1 [redacted]", value))
            event[key] = _CITIZEN_ID.sub("[id-number]", value)
    return event


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _json_line(event: Any, **kwargs: Any) -> str:
    """One JSON object per line, by orjson: compact, UTF-8 (Chinese text stays readable), and
    ~3 µs less per line than the json module, paid on every request's access-log line."""
    try:
        return orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS, **kwargs).decode()
    except TypeError:  # what orjson cannot write (an int beyond 64 bits…): a line all the same
        return json.dumps(event, default=repr, ensure_ascii=False)


# The level configure_logging set; 0 (everything) until it runs, as structlog's default is.
_level = 0


def enabled_for(level: int) -> bool:
    """Whether a line at ``level`` would be written: lets a hot path skip building the call
    (every request's access line costs ~6 µs through structlog's proxy even when filtered)."""
    return level >= _level


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    global _level
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _level = threshold
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
