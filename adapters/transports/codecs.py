"""Decoding native bodies: JSON, and XML from legacy systems (via defusedxml)."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

__all__ = ["DecodeError", "decode_body", "element_to_data"]


class DecodeError(ValueError):
    pass


def element_to_data(element: Element) -> Any:
    """An element as plain data: text for leaves, a dict for parents, lists for repeats."""
    children = list(element)
    if not children:
        return (element.text or "").strip()
    data: dict[str, Any] = {}
    for child in children:
        value = element_to_data(child)
        if child.tag in data:
            existing = data[child.tag]
            if isinstance(existing, list):
                existing.append(value)
            else:
                data[child.tag] = [existing, value]
        else:
            data[child.tag] = value
    return data


def decode_body(body: bytes, body_format: str) -> Any:
    if body_format == "json":
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not JSON: {exc}") from exc
    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException) as exc:
        raise DecodeError(f"not well-formed or unsafe XML: {exc}") from exc
    return {root.tag: element_to_data(root)}
