"""Compose's `${VAR}` syntax: substitute variables in a string, or list the variables a string needs.

The grammar is Compose's own (compose-go `template`): `$$` is a literal `$`; `$NAME` and `${NAME}` take the
value (empty when unset); `${NAME:-x}` / `${NAME-x}` give a default when unset or empty / unset;
`${NAME:?msg}` / `${NAME?msg}` stop with `msg` when unset or empty / unset; `${NAME:+x}` / `${NAME+x}` give
`x` when set and not empty / set. Defaults, messages and replacements may themselves hold variables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPS = (":-", ":?", ":+", "-", "?", "+")


class TemplateError(Exception):
    """A `${` that Compose cannot read, e.g. `${}` or `${A B}` or a missing `}`."""


class RequiredVariable(Exception):
    """`${NAME?msg}` or `${NAME:?msg}` met an unset (or empty) variable."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Var:
    name: str
    op: str  # "" (plain), ":-", "-", ":?", "?", ":+", "+"
    arg: tuple[str | Var, ...] = ()
    braced: bool = True


Part = str | Var


@dataclass(frozen=True)
class Reference:
    """One variable a string uses, and whether it works without the variable being set."""

    name: str
    op: str
    message: str = ""  # for `?` and `:?`

    @property
    def has_default(self) -> bool:
        return self.op in (":-", "-", ":+", "+")

    @property
    def required(self) -> bool:
        return self.op in (":?", "?")


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing the `${` just before `start` (nested `${...}` counted, as Compose does)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def parse(text: str, *, braced_only: bool = False) -> tuple[Part, ...]:
    """Split `text` into literal strings and variables; `braced_only` leaves `$NAME` as literal text."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        dollar = text.find("$", i)
        if dollar < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:dollar])
        nxt = text[dollar + 1: dollar + 2]
        if nxt == "$":
            literal.append("$")
            i = dollar + 2
            continue
        if nxt == "{":
            end = _closing_brace(text, dollar + 2)
            if end < 0:
                raise TemplateError(f"`{text[dollar:dollar + 40]}` has no closing `}}`")
            body = text[dollar + 2: end]
            m = _NAME.match(body)
            if not m:
                raise TemplateError(f"`${{{body}}}` does not start with a variable name")
            rest = body[m.end():]
            op = next((o for o in _OPS if rest.startswith(o)), None)
            if rest and op is None:
                raise TemplateError(f"`${{{body}}}` is not a variable: after the name comes one of {', '.join(_OPS)}")
            if literal:
                parts.append("".join(literal))
                literal = []
            arg = parse(rest[len(op):], braced_only=braced_only) if op else ()
            parts.append(Var(m.group(0), op or "", arg))
            i = end + 1
            continue
        m = _NAME.match(text, dollar + 1)
        if m and not braced_only:
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Var(m.group(0), "", (), braced=False))
            i = m.end()
            continue
        literal.append("$")  # `$1`, `$ `, a trailing `$`: left as they are
        i = dollar + 1
    if literal:
        parts.append("".join(literal))
    return tuple(p for p in parts if p != "")


Lookup = Callable[[str], "str | None"]


def substitute(text: str, lookup: Lookup, *, braced_only: bool = False, plain_required: bool = False,
               missing: str | None = None) -> str:
    """`text` with every variable replaced; `lookup` returns a value or None when unset.

    `plain_required` makes a bare `${NAME}` that is unset or empty raise RequiredVariable, as `:?` does;
    with `missing` given, a required variable that is missing becomes that text instead of an error.
    """
    return _Renderer(lookup, plain_required, missing).render(parse(text, braced_only=braced_only))


@dataclass(frozen=True)
class _Renderer:
    lookup: Lookup
    plain_required: bool
    missing: str | None

    def render(self, parts: tuple[Part, ...]) -> str:
        return "".join(part if isinstance(part, str) else self.value(part) for part in parts)

    def required(self, var: Var) -> str:
        if self.missing is not None:
            return self.missing
        raise RequiredVariable(var.name, _message(var))

    def value(self, var: Var) -> str:
        value = self.lookup(var.name)
        is_set, not_empty = value is not None, bool(value)
        if var.op in (":-", "-"):
            return value if value is not None and (not_empty if var.op == ":-" else is_set) else self.render(var.arg)
        if var.op in (":?", "?"):
            return value or "" if (not_empty if var.op == ":?" else is_set) else self.required(var)
        if var.op in (":+", "+"):
            return self.render(var.arg) if (not_empty if var.op == ":+" else is_set) else ""
        if self.plain_required and not value:
            return self.required(var)
        return value or ""


def _message(var: Var) -> str:
    """The text of `${NAME?text}`, as written (variables in it are not expanded)."""
    return "".join(p if isinstance(p, str) else f"${{{p.name}}}" for p in var.arg) if var.op in (":?", "?") else ""


def references(text: str, *, braced_only: bool = False) -> Iterator[Reference]:
    """Every variable `text` uses, nested ones included, in order."""
    yield from _refs(parse(text, braced_only=braced_only))


def _refs(parts: tuple[Part, ...]) -> Iterator[Reference]:
    for part in parts:
        if isinstance(part, Var):
            yield Reference(part.name, part.op, _message(part))
            yield from _refs(part.arg)
