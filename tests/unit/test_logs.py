"""Structured logs: JSON lines, context fields, per-component levels and secret redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from flashmm import logs
from flashmm.logs import bind_context, register_secret, setup_logging

TOUCHED = ("flashmm", "flashmm.notify", "flashmm.notifyx", "flashmm.venue", "aiohttp")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in TOUCHED}
    yield
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
    logs.clear_secrets()


def capture(level: str = "DEBUG", **kw: Any) -> io.StringIO:
    out = io.StringIO()
    setup_logging(level, stream=out, **kw)
    return out


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_one_json_object_per_line_with_iso_utc_ts() -> None:
    out = capture()
    log = logging.getLogger("flashmm.venue.sei")
    before = datetime.now(UTC)
    log.info("placed %s orders", 3)
    log.warning("second\nline")
    first, second = lines(out)
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "INFO",
        "logger": "flashmm.venue.sei",
        "message": "placed 3 orders",
    }
    assert first["ts"].endswith("Z")
    ts = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert ts.utcoffset() == timedelta(0) and abs(ts - before) < timedelta(seconds=5)
    assert second["message"] == "second\nline" and second["level"] == "WARNING"


def test_context_fields_bind_nest_and_reset() -> None:
    out = capture()
    log = logging.getLogger("flashmm.test")
    with bind_context(market="SEI/USDC", workflow_id="wf-1"):
        log.info("a")
        with bind_context(order_id="o-7", market="ATOM/USDC"):
            log.info("b")
        log.info("c", extra={"order_id": "o-9", "channel": "slack"})
    log.info("d")
    a, b, c, d = lines(out)
    assert (a["market"], a["workflow_id"], "order_id" in a) == ("SEI/USDC", "wf-1", False)
    assert (b["market"], b["order_id"], b["workflow_id"]) == ("ATOM/USDC", "o-7", "wf-1")
    assert (c["market"], c["order_id"], c["channel"]) == ("SEI/USDC", "o-9", "slack")
    assert not {"market", "order_id", "workflow_id"} & d.keys()


async def test_context_is_per_task() -> None:
    out = capture()
    log = logging.getLogger("flashmm.test")

    async def work(market: str) -> None:
        with bind_context(market=market):
            await asyncio.sleep(0.01)
            log.info("tick")

    await asyncio.gather(work("A/USDC"), work("B/USDC"))
    assert sorted(rec["market"] for rec in lines(out)) == ["A/USDC", "B/USDC"]


def test_exception_info_and_odd_extras() -> None:
    out = capture()
    try:
        raise KeyError("missing-order")
    except KeyError:
        logging.getLogger("flashmm.test").exception("lookup failed", extra={"when": object()})
    [rec] = lines(out)
    assert rec["level"] == "ERROR" and rec["exc_type"] == "KeyError"
    assert rec["exc_message"] == "'missing-order'"
    assert "Traceback" in rec["exc_info"] and "raise KeyError" in rec["exc_info"]
    assert rec["when"].startswith("<object object")


def test_per_component_levels_follow_logger_prefixes() -> None:
    out = capture("WARNING", component_levels={"flashmm.notify": "debug", "vendorlib": "ERROR"})
    logging.getLogger("flashmm.notify.channels").debug("kept")
    logging.getLogger("flashmm.notifyx").info("dropped: not under the prefix")
    logging.getLogger("flashmm.venue").info("dropped: root is WARNING")
    logging.getLogger("vendorlib.client").warning("dropped: vendorlib is ERROR")
    logging.getLogger("flashmm.venue").warning("kept too")
    assert [r["message"] for r in lines(out)] == ["kept", "kept too"]


def test_reconfiguring_replaces_handler_and_resets_old_components() -> None:
    capture("INFO", component_levels={"flashmm.notify": "DEBUG"})
    out = capture("INFO")
    flashmm_handlers = [
        h for h in logging.getLogger().handlers if getattr(h, "_flashmm_handler", 0)
    ]
    assert len(flashmm_handlers) == 1
    logging.getLogger("flashmm.notify").debug("no longer debug")
    logging.getLogger("flashmm.notify").info("info")
    assert [r["message"] for r in lines(out)] == ["info"]


@pytest.mark.parametrize(
    ("level", "components"),
    [("LOUD", None), ("INFO", {"flashmm": "chatty"}), ("INFO", {"": "DEBUG"}), (20, None)],
)
def test_bad_levels_are_rejected_before_anything_changes(level: Any, components: Any) -> None:
    root = logging.getLogger()
    handlers = root.handlers[:]
    with pytest.raises(ValueError):
        setup_logging(level, components, stream=io.StringIO())
    assert root.handlers == handlers


def test_text_output_for_terminals() -> None:
    out = capture(json_output=False)
    with bind_context(market="SEI/USDC"):
        logging.getLogger("flashmm.test").info("hello")
    line = out.getvalue().strip()
    assert line.endswith("INFO     flashmm.test: hello [market=SEI/USDC]")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_redaction_in_message_args_fields_context_and_exceptions() -> None:
    secret = "sk-live-0123456789abcdef"
    register_secret(secret)
    register_secret(SecretStr("mnemonic words here"))
    out = capture()
    log = logging.getLogger("flashmm.test")
    log.info(f"raw {secret}")
    log.info("arg %s", secret)
    log.info("fields", extra={"url": f"https://h/{secret}", "nested": {"k": [secret]}})
    with bind_context(workflow_id=f"wf-{secret}"):
        log.info("ctx")
    try:
        raise RuntimeError(f"failed with {secret} and mnemonic words here")
    except RuntimeError:
        log.exception("boom")
    raw = out.getvalue()
    assert secret not in raw and "mnemonic words here" not in raw
    recs = lines(out)
    assert [r["message"] for r in recs[:2]] == ["raw ***", "arg ***"]
    assert recs[2]["url"] == "https://h/***" and recs[2]["nested"] == {"k": ["***"]}
    assert recs[3]["workflow_id"] == "wf-***"
    assert recs[4]["exc_message"] == "failed with *** and ***" and secret not in recs[4]["exc_info"]


def test_redaction_reaches_text_output_and_later_handlers() -> None:
    register_secret("topsecret-value")
    out = capture(json_output=False)
    plain = io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(plain))  # added after ours
    logging.getLogger("flashmm.test").warning("token=%s", "topsecret-value")
    assert out.getvalue().rstrip().endswith("token=***")
    assert plain.getvalue() == "token=***\n"


def test_longer_secret_wins_and_short_secrets_are_refused() -> None:
    register_secret("abcd-1234")
    register_secret("abcd-1234-extended")
    assert logs.redact("x abcd-1234-extended y abcd-1234") == "x *** y ***"
    with pytest.raises(ValueError, match="too short"):
        register_secret("abc")
    with pytest.raises(TypeError):
        register_secret(1234)  # type: ignore[arg-type]
    logs.clear_secrets()
    assert logs.redact("abcd-1234") == "abcd-1234"
