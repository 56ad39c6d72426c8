"""One input policy for every edge (operator API, hot-path control API, CLI, workflow inputs).

What comes from outside is refused unless it is:

* **text**: valid UTF-8, no NUL character, no lone surrogate (PostgreSQL refuses the first,
  UTF-8 cannot carry the second), within a length when one is given;
* **numbers**: finite (no ``NaN``, ``Infinity``, ``1e309``), integers within int64 (what a
  PostgreSQL ``bigint`` holds; a 400-digit integer is never turned into a Python ``int``),
  never a boolean where a number is meant;
* **JSON**: at most ``MAX_JSON_DEPTH`` levels of nesting (a 20,000-level document is refused
  before the parser recurses) and made of the types above;
* **dates**: representable in UTC (``9999-12-31T23:59:59-14:00`` is not).

A refusal is an :class:`InputError` (a ``ValueError``, so pydantic validators turn it into a
validation error too) carrying ``loc`` — where the bad value was, e.g. ``("body", "risk",
"max_position_notional")`` — and a message. Every function is pure: no I/O, no globals.

What is *stored* (an audit entry for a refused request) is made storable rather than
dropped: :func:`storable_text` escapes NUL as ``\\u0000`` and a lone surrogate as
``\\udXXX`` (the escape is visible, not reversible when the text already held that escape);
:func:`storable_json` does the same through a JSON value and writes numbers that cannot be
stored (:class:`RawNumber`) as their text. :func:`short` bounds what is echoed back.

Stable API (other modules import it): ``InputError``, ``RawNumber``, ``MAX_JSON_DEPTH``,
``INT64_MIN``, ``INT64_MAX``, ``text_problem``, ``check_text``, ``check_int``,
``check_float``, ``check_json_value``, ``loads_json``, ``parse_json``, ``check_datetime``,
``storable_text``, ``storable_json``, ``short``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

MAX_JSON_DEPTH = 32
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INT64_DIGITS = 19  # len(str(INT64_MAX)): longer digit strings are never converted
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # unrolled: linear, fast
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE = re.compile("[\ud800-\udfff]")

Loc = tuple[str | int, ...]


class InputError(ValueError):
    """A value the input policy refuses: where (``loc``) and why (``message``)."""

    def __init__(self, loc: str | Sequence[str | int], message: str) -> None:
        self.loc: Loc = (loc,) if isinstance(loc, str) else tuple(loc)
        self.message = message
        super().__init__(f"{'.'.join(str(p) for p in self.loc)}: {message}")

    def field(self) -> dict[str, Any]:
        """The refusal in the API's ``fields`` shape (location parts bounded for echoing)."""
        return {"loc": [short(str(p), 64) for p in self.loc], "msg": self.message}


class RawNumber(str):
    """A JSON number that cannot be held as a finite float or an int64 (``NaN``, ``1e309``,
    a 400-digit integer), kept as its source text by :func:`loads_json`. It is a ``str``, so
    it stays storable; :func:`check_json_value` refuses it."""


# --- text ---------------------------------------------------------------------------------
def text_problem(value: str) -> str | None:
    """Why the text breaks the policy, or None when it is fine."""
    if "\x00" in value:
        return "must not contain a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain a lone surrogate (not valid UTF-8)"
    return None


def check_text(value: Any, field: str | Sequence[str | int], max_len: int | None = None) -> str:
    """``value`` when it is policy-clean text (at most ``max_len`` characters if given)."""
    if not isinstance(value, str):
        raise InputError(field, "must be text")
    problem = text_problem(value)
    if problem is not None:
        raise InputError(field, problem)
    if max_len is not None and len(value) > max_len:
        raise InputError(field, f"must be at most {max_len} characters")
    return value


# --- numbers ------------------------------------------------------------------------------
def check_int(
    value: Any,
    field: str | Sequence[str | int],
    lo: int = INT64_MIN,
    hi: int = INT64_MAX,
) -> int:
    """``value`` when it is an int (not a bool) in ``[lo, hi]`` (default: int64)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field, "must be an integer")
    if not lo <= value <= hi:
        raise InputError(field, f"must be between {lo} and {hi}")
    return value


def check_float(
    value: Any,
    field: str | Sequence[str | int],
    lo: float | None = None,
    hi: float | None = None,
) -> float:
    """``value`` as a float when it is a finite number (not a bool) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(field, "must be a number")
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InputError(field, "must be a finite number in range")
    f = float(value)
    if not math.isfinite(f):
        raise InputError(field, "must be a finite number")
    if (lo is not None and f < lo) or (hi is not None and f > hi):
        raise InputError(field, f"must be between {lo} and {hi}")
    return f


# --- JSON ---------------------------------------------------------------------------------
def _depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than ``max_depth`` (no recursion)."""
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _raw_int(s: str) -> int | RawNumber:
    if len(s.lstrip("-")) > _INT64_DIGITS:
        return RawNumber(s)
    v = int(s)
    return v if INT64_MIN <= v <= INT64_MAX else RawNumber(s)


def _raw_float(s: str) -> float | RawNumber:
    v = float(s)
    return v if math.isfinite(v) else RawNumber(s)


def loads_json(
    raw: bytes | str, field: str | Sequence[str | int] = "body", max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse JSON without ever recursing deeply or converting an unbounded number.

    Refuses (``InputError``) bytes that are not UTF-8, documents nested deeper than
    ``max_depth`` and text that is not JSON. Numbers it cannot hold (``NaN``, ``Infinity``,
    ``1e309``, integers outside int64) come back as :class:`RawNumber`, and strings as they
    are (NUL and lone surrogates included): use :func:`parse_json` to refuse those, or
    :func:`storable_json` to keep them."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(field, "must be valid UTF-8") from None
    else:
        text = raw
    if text.startswith("\ufeff"):
        text = text[1:]
    if _depth_exceeds(text, max_depth):
        raise InputError(field, f"must not nest deeper than {max_depth} levels")
    try:
        return json.loads(
            text, parse_int=_raw_int, parse_float=_raw_float, parse_constant=RawNumber
        )
    except RecursionError:  # the depth check above should make this unreachable
        raise InputError(field, f"must not nest deeper than {max_depth} levels") from None
    except ValueError as e:
        raise InputError(field, f"is not valid JSON: {getattr(e, 'msg', 'parse error')}") from None


def check_json_value(
    value: Any, field: str | Sequence[str | int] = "body", max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """``value`` when every part of it follows the policy: text keys and values clean,
    numbers finite and int64, nesting within ``max_depth``, only JSON types. Walks with
    an explicit stack, so depth cannot crash it."""
    root: Loc = (field,) if isinstance(field, str) else tuple(field)
    stack: list[tuple[Any, Loc, int]] = [(value, root, 0)]
    while stack:
        v, loc, depth = stack.pop()
        if isinstance(v, RawNumber):
            raise InputError(loc, "must be a finite number in range")
        if isinstance(v, str):
            check_text(v, loc)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            check_int(v, loc)
        elif isinstance(v, float):
            check_float(v, loc)
        elif isinstance(v, dict | list | tuple):
            if depth >= max_depth:
                raise InputError(loc, f"must not nest deeper than {max_depth} levels")
            if isinstance(v, dict):
                for k, x in v.items():
                    if not isinstance(k, str):
                        raise InputError(loc, "object keys must be text")
                    check_text(k, (*loc, k))
                    stack.append((x, (*loc, k), depth + 1))
            else:
                stack.extend((x, (*loc, i), depth + 1) for i, x in enumerate(v))
        else:
            raise InputError(loc, f"must be a JSON value, not {type(v).__name__}")
    return value


def parse_json(
    raw: bytes | str, field: str | Sequence[str | int] = "body", max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse JSON and refuse anything outside the policy (:func:`loads_json` then
    :func:`check_json_value`)."""
    return check_json_value(loads_json(raw, field, max_depth), field, max_depth)


# --- dates --------------------------------------------------------------------------------
def check_datetime(value: datetime, field: str | Sequence[str | int]) -> datetime:
    """``value`` when it has a UTC equivalent (a naive value is taken as UTC)."""
    if value.tzinfo is None:
        return value
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(field, "is out of range once converted to UTC") from None
    return value


# --- storing and echoing ------------------------------------------------------------------
def storable_text(value: str) -> str:
    """The text with NUL escaped as ``\\u0000`` and each lone surrogate as ``\\udXXX``:
    nothing dropped, and PostgreSQL (text and jsonb) accepts the result."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    if _SURROGATE.search(value):
        value = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return value


def storable_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A copy of a JSON-like value that PostgreSQL's jsonb accepts: text made storable,
    non-finite floats and out-of-range ints written as their text, other objects as their
    ``repr``, and anything nested deeper than ``max_depth`` replaced by a marker."""

    def conv(v: Any, depth: int) -> Any:
        if isinstance(v, str):
            return storable_text(v)
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int):
            return v if INT64_MIN <= v <= INT64_MAX else _int_text(v)
        if isinstance(v, float):
            return v if math.isfinite(v) else repr(v)
        if isinstance(v, dict | list | tuple):
            if depth >= max_depth:
                return f"<nested deeper than {max_depth} levels>"
            if isinstance(v, dict):
                return {storable_text(str(k)): conv(x, depth + 1) for k, x in v.items()}
            return [conv(x, depth + 1) for x in v]
        return storable_text(repr(v))

    return conv(value, 0)


def _int_text(v: int) -> str:
    try:
        return str(v)
    except ValueError:  # over the interpreter's digit limit for int -> str
        return f"<integer of about {int(v.bit_length() * 0.30103)} digits>"


def short(value: str, max_len: int = 64) -> str:
    """The value for echoing back in a message: storable, and cut to ``max_len`` characters
    with a note of how much was left out."""
    value = storable_text(value)
    if len(value) <= max_len:
        return value
    return f"{value[:max_len]}…(+{len(value) - max_len} chars)"
