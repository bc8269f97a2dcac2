"""Native bodies: JSON, and XML from legacy systems (decoded via defusedxml).

:func:`encode_body` is :func:`decode_body` backwards, for what the gateway sends (deliveries):
a mapping becomes an element with a child per key, a list repeated elements of its key, a
scalar the element's text, ``None`` or ``""`` an empty element.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

__all__ = ["DecodeError", "decode_body", "element_to_data", "encode_body"]


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


def _fill(element: Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            for item in child if isinstance(child, list) else [child]:
                _fill(SubElement(element, str(key)), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None and value != "":
        element.text = str(value)


def encode_body(data: Any, body_format: str) -> bytes:
    """``data`` as the agency's wire format; XML: ``{root: {...}}`` with one root element."""
    if body_format == "json":
        return orjson.dumps(data)
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError("an XML document has exactly one root element")
    ((tag, content),) = data.items()
    root = Element(str(tag))
    _fill(root, content)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode").encode()
