"""Strict YAML reading for the standard's files, keeping node positions.

Contract: :func:`read_yaml` returns plain data (dict/list/scalars) plus a map from each value's
path to its 1-based ``(line, column)``. It is stricter than ``yaml.safe_load``:

* the file must be UTF-8 and contain exactly one document;
* duplicate mapping keys, aliases (``*ref``) and merge keys (``<<``) are errors;
* mapping keys are always strings: the key's source text is used as written, so ``"01"`` and
  ``01`` are both the key ``"01"`` (never the integer 1).

All failures raise :class:`~gateway.standard.errors.StandardError` with file, line and column.

Speed: a file is first parsed with libyaml's C parser (``yaml.CSafeLoader``) when PyYAML has
it. Every app start reads the whole standard and the policy set; the pure-Python parser
took ~0.45 s of each start. The C composer resolves an alias to the anchored node itself, so
an alias shows up as a node met twice; any such file, and any file the C path cannot read,
is read again by the pure-Python strict loader, whose errors (and positions) are the
contract. On valid files both give the same data and positions (tests/standard/test_yaml.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from gateway.standard.errors import StandardError, StandardProblem

__all__ = ["YamlDocument", "YamlPath", "read_yaml"]

YamlPath = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _MarkLike(Protocol):
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


class _Rejected(Exception):
    def __init__(self, message: str, mark: _MarkLike | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases while composing."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Rejected("YAML aliases are not allowed in the standard", event.start_mark)
        return super().compose_node(parent, index)


def _position(mark: _MarkLike | None) -> tuple[int | None, int | None]:
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its ``data`` and the 1-based position of every value by path."""

    file: str
    data: object
    marks: Mapping[YamlPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: YamlPath) -> tuple[int | None, int | None]:
        """Position of the value at ``path``, or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            pos = self.marks.get(path[:end])
            if pos is not None:
                return pos
        return None, None

    def problem(self, path: YamlPath, message: str) -> StandardProblem:
        """A problem located at ``path`` in this file."""
        line, column = self.locate(path)
        return StandardProblem(message, self.file, line, column)


class _AliasMet(Exception):
    """The C composer's tree holds a node twice: the file has an alias."""


class _Constructor(Protocol):
    def construct_object(self, node: yaml.Node, deep: bool = ...) -> object: ...


class _Builder:
    def __init__(self, loader: _Constructor, *, track_nodes: bool = False) -> None:
        self._loader = loader
        self.marks: dict[YamlPath, tuple[int, int]] = {}
        self._seen: set[int] | None = set() if track_nodes else None

    def build(self, node: yaml.Node, path: YamlPath) -> object:
        if self._seen is not None:
            if id(node) in self._seen:
                raise _AliasMet
            self._seen.add(id(node))
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, object] = {}
            first_seen: dict[str, _MarkLike] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    raise _Rejected("YAML merge keys (<<) are not allowed", key_node.start_mark)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Rejected("mapping keys must be plain strings", key_node.start_mark)
                key = str(key_node.value)
                if key in first_seen:
                    first_line = first_seen[key].line + 1
                    raise _Rejected(
                        f"duplicate key {key!r} (first defined on line {first_line})",
                        key_node.start_mark,
                    )
                first_seen[key] = key_node.start_mark
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value: object = self._loader.construct_object(node, deep=True)
        return value


def read_yaml(path: Path) -> YamlDocument:
    """Read and strictly parse one YAML file (see module docstring). Raises ``StandardError``."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StandardError.single(f"cannot read file: {exc.strerror or exc}", file) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise StandardError.single("file is not valid UTF-8", file, bad_line) from None
    fast = _read_with_libyaml(file, text)
    return fast if fast is not None else _read_strict(file, text)


def _read_strict(file: str, text: str) -> YamlDocument:
    """The pure-Python strict reading: the reference, and the one that words every error."""
    try:
        # The reader refuses control characters (e.g. NUL) as it is created.
        loader = _StrictLoader(text)
    except yaml.YAMLError as exc:
        at_line = text[: getattr(exc, "position", 0)].count("\n") + 1
        raise StandardError.single(f"YAML error: {exc}", file, at_line) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise StandardError.single("file is empty", file, 1, 1)
        builder = _Builder(loader)
        data = builder.build(node, ())
    except _Rejected as exc:
        line, column = _position(exc.mark)
        raise StandardError.single(exc.message, file, line, column) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = _position(mark)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise StandardError.single(
            f"YAML syntax error: {message or exc}", file, line, column
        ) from None
    except yaml.YAMLError as exc:
        raise StandardError.single(f"YAML error: {exc}", file) from None
    finally:
        loader.dispose()
    return YamlDocument(file, data, builder.marks)


_CSafeLoader: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _read_with_libyaml(file: str, text: str) -> YamlDocument | None:
    """The document as the strict loader reads it, or None: read it with the strict loader
    (an alias, a problem, no libyaml, or text the Python reader would refuse)."""
    if _CSafeLoader is None or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return None
    loader = _CSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        builder = _Builder(loader, track_nodes=True)
        data = builder.build(node, ())
    except (_AliasMet, _Rejected, yaml.YAMLError):
        return None
    finally:
        loader.dispose()
    return YamlDocument(file, data, builder.marks)
