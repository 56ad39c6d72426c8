"""The input policy (flashmm/inputs.py): what it refuses, where it says the problem is, and
what it makes storable instead of dropping."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from flashmm.inputs import (
    INT64_MAX,
    MAX_JSON_DEPTH,
    InputError,
    RawNumber,
    check_datetime,
    check_float,
    check_int,
    check_json_value,
    check_text,
    loads_json,
    parse_json,
    short,
    storable_json,
    storable_text,
)


@pytest.mark.parametrize(
    ("text", "why"),
    [("a\x00b", "NUL"), ("x\ud800", "lone surrogate"), ("\udfff", "lone surrogate")],
)
def test_text_with_nul_or_lone_surrogates_is_refused(text: str, why: str) -> None:
    with pytest.raises(InputError, match=why) as e:
        check_text(text, ("query", "actor"))
    assert e.value.loc == ("query", "actor")
    assert e.value.field()["loc"] == ["query", "actor"]


def test_clean_text_passes_and_length_is_bounded() -> None:
    assert check_text("émoji 🚀 ok\n", "reason") == "émoji 🚀 ok\n"
    with pytest.raises(InputError, match="at most 3"):
        check_text("abcd", "reason", max_len=3)
    with pytest.raises(InputError, match="text"):
        check_text(1, "reason")


def test_numbers_must_be_finite_int64_and_not_booleans() -> None:
    assert check_int(INT64_MAX, "before_id") == INT64_MAX
    with pytest.raises(InputError):
        check_int(2**63, "before_id")
    with pytest.raises(InputError):
        check_int(True, "limit")
    for bad in (float("nan"), float("inf"), -float("inf"), True, 10**400):
        with pytest.raises(InputError):
            check_float(bad, "x")
    assert check_float(3, "x", lo=0, hi=5) == 3.0
    with pytest.raises(InputError, match="between"):
        check_float(6.0, "x", lo=0, hi=5)


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"a": NaN}', ["body", "a"]),
        (b'{"a": [1, Infinity]}', ["body", "a", 1]),
        (b'{"a": -Infinity}', ["body", "a"]),
        (b'{"a": 1e309}', ["body", "a"]),
        (b'{"risk": {"x": ' + b"9" * 400 + b"}}", ["body", "risk", "x"]),
        (b'{"a": 9223372036854775808}', ["body", "a"]),
        (b'{"a": "\\u0000"}', ["body", "a"]),
        (b'{"a\\u0000": 1}', ["body", "a\\u0000"]),
        (b'{"a": "\\ud800"}', ["body", "a"]),
        (b'{"a": "\xed\xa0\x80"}', ["body"]),  # a surrogate encoded as bytes: not UTF-8
        (b'{"a": "\xff"}', ["body"]),
        (b'{"a": ', ["body"]),
    ],
)
def test_json_outside_the_policy_is_refused_with_its_location(raw: bytes, loc: list[Any]) -> None:
    with pytest.raises(InputError) as e:
        parse_json(raw)
    assert e.value.field()["loc"] == [str(p) for p in loc]


def test_deep_nesting_is_refused_fast_without_recursion() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(ok) is not None
    t0 = time.perf_counter()
    for doc in ("[" * 20_000 + "]" * 20_000, '{"a":' * 20_000 + "1" + "}" * 20_000):
        with pytest.raises(InputError, match="nest deeper"):
            parse_json(doc)
    assert time.perf_counter() - t0 < 0.5
    # brackets inside strings do not count
    assert parse_json(json.dumps({"s": "[" * 10_000})) == {"s": "[" * 10_000}
    tricky = {"s": '\\"[{' * 10_000, "t": "\\"}  # escaped quotes and backslashes
    assert parse_json(json.dumps(tricky)) == tricky


def test_check_json_value_walks_python_values_iteratively() -> None:
    deep: list[Any] = []
    cur = deep
    for _ in range(50_000):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(InputError, match="nest deeper"):
        check_json_value(deep)
    with pytest.raises(InputError, match="JSON value"):
        check_json_value({"a": object()})
    assert check_json_value({"a": [1, 2.5, "x", None, True]}) == {"a": [1, 2.5, "x", None, True]}


def test_loads_json_keeps_what_it_cannot_hold_as_raw_text() -> None:
    v = loads_json(b'{"a": NaN, "b": 1e309, "c": ' + b"1" * 40 + b', "d": "\\u0000"}')
    assert v == {"a": "NaN", "b": "1e309", "c": "1" * 40, "d": "\x00"}
    assert all(isinstance(v[k], RawNumber) for k in "abc")


def test_storable_escapes_instead_of_dropping() -> None:
    assert storable_text("a\x00b\ud800c") == "a\\u0000b\\ud800c"
    assert storable_text("plain") == "plain"
    v = storable_json(
        {"n\x00": float("nan"), "i": 10**30, "s": ["\udc80"], "r": RawNumber("1e309")}
    )
    assert v == {"n\\u0000": "nan", "i": str(10**30), "s": ["\\udc80"], "r": "1e309"}
    json.dumps(v, allow_nan=False).encode("utf-8")  # strict JSON, valid UTF-8
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    assert "nested deeper" in json.dumps(storable_json(deep))


def test_dates_must_have_a_utc_equivalent() -> None:
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))
    with pytest.raises(InputError, match="out of range"):
        check_datetime(late, "until")
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    with pytest.raises(InputError):
        check_datetime(early, "since")
    now = datetime.now(UTC)
    assert check_datetime(now, "since") is now


def test_short_bounds_what_is_echoed() -> None:
    assert short("abc") == "abc"
    s = short("x" * 10_000, 64)
    assert s.startswith("x" * 64) and "+9936 chars" in s and len(s) < 90
    assert short("a\x00") == "a\\u0000"
