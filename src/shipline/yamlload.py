"""YAML as Docker Compose reads it, safe against hostile input.

Compose parses with go-yaml v3, which differs from PyYAML's YAML 1.1 defaults in ways that change meaning:
`22:22` is a string (PyYAML: the sexagesimal integer 1342), `no`/`on`/`yes` are strings (PyYAML: booleans),
dates stay strings, and a key defined twice is an error. This loader follows go-yaml, understands Compose's
`!reset` and `!override` tags, and refuses what would hurt: bytes that are not UTF-8 text, recursive
aliases, and anchors whose expansion would explode (an "alias bomb": ten nested levels of ten aliases is a
10 KB file that expands to ten billion nodes).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Far above any real file (a 57-service product with shared anchors expands to a few thousand nodes;
# 40,000 services of ten keys each to under a million), far below what would take seconds to walk.
MAX_EXPANDED_NODES = 5_000_000


class YamlError(Exception):
    """The text is not YAML shipline can use; the message says where and why, in one line."""


@dataclass(frozen=True)
class Reset:
    """`!reset`: an override file removes the value the files before it set."""

    value: Any


@dataclass(frozen=True)
class Override:
    """`!override`: an override file replaces the value instead of merging into it."""

    value: Any


_BASE: Any = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


class _Resolver(yaml.resolver.BaseResolver):
    """The YAML 1.2 core schema, as go-yaml v3 resolves plain scalars into untyped values."""


_INT = r"[-+]?(?:0|[1-9][0-9_]*)|[-+]?0[0-7_]+|[-+]?0o[0-7_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?0b[01_]+"
_FLOAT = r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
_Resolver.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Resolver.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(f"^(?:{_INT})$"), list("-+0123456789"))
_Resolver.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(f"^(?:{_FLOAT})$"), list("-+0123456789."))
_Resolver.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class _Constructor(yaml.constructor.SafeConstructor):
    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text.startswith(("0o", "0x", "0b")):
            return sign * int(text, 0)
        if len(text) > 1 and text.startswith("0"):
            return sign * int(text, 8)  # 0440: octal, as Go's ParseInt(s, 0, 64) reads file modes
        return sign * int(text)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        text = str(self.construct_scalar(node)).replace("_", "").lower()
        if text.lstrip("+-") == ".inf":
            return float("-inf") if text.startswith("-") else float("inf")
        return float("nan") if text == ".nan" else float(text)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                        key_node.start_mark)
            if key in mapping and not getattr(key_node, "_merged", False):
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is defined twice in the same mapping", key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def flatten_mapping(self, node: MappingNode) -> None:
        """`<<: *anchor` merges; keys it brings in may be overridden by the mapping's own keys."""
        own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
        if len(own) == len(node.value):
            return
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                continue
            for source in value_node.value if isinstance(value_node, SequenceNode) else [value_node]:
                if not isinstance(source, MappingNode):
                    raise yaml.constructor.ConstructorError(None, None, "`<<` merges mappings only", source.start_mark)
                self.flatten_mapping(source)
                merged += source.value
        seen = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        kept: list[tuple[Node, Node]] = []
        for key_node, value_node in merged:  # the mapping's own keys win, then the earlier merged mapping
            if not isinstance(key_node, ScalarNode) or key_node.value in seen:
                continue
            seen.add(key_node.value)
            copy = ScalarNode(key_node.tag, key_node.value, key_node.start_mark, key_node.end_mark)
            copy._merged = True  # type: ignore[attr-defined]
            kept.append((copy, value_node))
        node.value = kept + own


def _add(tag: str | None, build: Any) -> None:
    _Constructor.add_constructor(tag, build)


_add("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)
_add("tag:yaml.org,2002:float", _Constructor.construct_yaml_float)
_add("tag:yaml.org,2002:map", lambda c, n: c.construct_mapping(n))
_add("!reset", lambda c, n: Reset(_construct_any(c, n)))
_add("!override", lambda c, n: Override(_construct_any(c, n)))
_add(None, lambda c, n: _unknown_tag(n))


def _construct_any(c: Any, node: Node) -> Any:
    if isinstance(node, MappingNode):
        return c.construct_mapping(node, deep=True)
    if isinstance(node, SequenceNode):
        return [c.construct_object(n, deep=True) for n in node.value]
    value = c.construct_scalar(node)
    return None if value in ("", "null", "~") else value


def _unknown_tag(node: Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"unknown tag {node.tag}", node.start_mark)


class _Loader(_BASE, _Constructor, _Resolver):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        _BASE.__init__(self, stream)


# The C parser composes through the Python resolver and constructor above; only the scanner is C.
_Loader.yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers
_Loader.yaml_constructors = _Constructor.yaml_constructors


def decode(data: bytes) -> str:
    """The text of a YAML file: UTF-8 (with or without BOM) or UTF-16 with a BOM, as YAML allows."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise YamlError("it starts with a UTF-16 byte order mark but is not UTF-16 text") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlError(f"it is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} "
                        "(save the file as UTF-8)") from None


def _expanded_size(root: Node) -> int:
    """How many nodes the document has once every alias is expanded (memoised: linear in the file)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            total = 1 + sum(size[id(c)] for c in children)
            size[key] = min(total, MAX_EXPANDED_NODES + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlError(f"an alias refers to the node that contains it (line {node.start_mark.line + 1}); "
                            "recursive aliases cannot be expanded")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return size[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: reading a big file creates many objects and no cycles, and its
    repeated full collections made a 10,000-service Compose file take four times as long to parse."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load(data: bytes | str) -> Any:
    """Parse one YAML document; raises YamlError with the line and the reason."""
    with collector_paused():
        return _load(data)


def _load(data: bytes | str) -> Any:
    text = decode(data) if isinstance(data, bytes) else data
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise YamlError(_describe(exc)) from None
        if node is None:
            return None
        if _expanded_size(node) > MAX_EXPANDED_NODES:
            raise YamlError(f"its anchors and aliases expand to more than {MAX_EXPANDED_NODES:,} values "
                            "(nested aliases that multiply, an \"alias bomb\"); write the values out instead")
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise YamlError(_describe(exc)) from None
        except RecursionError:
            raise YamlError("it nests too deeply to read") from None
    except RecursionError:
        raise YamlError("it nests too deeply to read") from None
    finally:
        loader.dispose()


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "expected a single document" in str(exc):
        problem = "it holds several YAML documents (`---`); keep one per file"
    return f"not valid YAML{where}: {problem}"
