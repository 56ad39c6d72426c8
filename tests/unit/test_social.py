"""Social publisher: X API v2 wire format, summary formatting, deny filter and rate limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from flashmm import logs
from flashmm.notify import SocialConfig, SocialPublisher, format_summary
from flashmm.notify.social import deny_reasons, weighted_length

TOKEN = "AAAAxBearerTokenForTests0123456789"
SECRET_TOKEN = SecretStr(TOKEN)
FIGURES: dict[str, object] = {
    "pnl_pct": 1.234,
    "spread_improvement_pct": 18.44,
    "uptime_pct": 99.98,
    "fills": 1234,
}
SUMMARY = (
    "FlashMM daily summary | PnL +1.23% | spread improvement +18.4% vs market"
    " | uptime 99.98% | 1,234 fills #Sei"
)


@dataclass
class FakeX:
    """X API v2 stand-in: records POST /2/tweets and answers from a script."""

    base_url: str = ""
    hits: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    answers: list[tuple[int, Any]] = field(default_factory=list)

    async def tweet(self, request: web.Request) -> web.Response:
        self.hits.append((dict(request.headers), await request.json()))
        if self.answers:
            status, body = self.answers.pop(0)
            return web.json_response(body, status=status)
        text = self.hits[-1][1]["text"]
        return web.json_response({"data": {"id": str(len(self.hits)), "text": text}}, status=201)


@pytest.fixture
async def x_api() -> AsyncIterator[FakeX]:
    fake = FakeX()
    app = web.Application()
    app.router.add_post("/2/tweets", fake.tweet)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    fake.base_url = str(server.make_url(""))
    yield fake
    await server.close()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    logs.clear_secrets()


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def publisher(fake: FakeX, clock: Clock | None = None, **kw: Any) -> SocialPublisher:
    config = SocialConfig(enabled=True, bearer_token=SECRET_TOKEN, base_url=fake.base_url, **kw)
    return SocialPublisher(config, clock=clock or Clock())


async def test_off_by_default_sends_nothing(x_api: FakeX) -> None:
    assert SocialConfig().enabled is False
    result = await SocialPublisher(SocialConfig(base_url=x_api.base_url)).publish_summary(FIGURES)
    assert result.status == "disabled" and not result.ok and x_api.hits == []
    with pytest.raises(ValueError, match="bearer_token"):
        SocialConfig(enabled=True)


def test_format_summary_is_short_and_clean() -> None:
    text = format_summary(FIGURES)
    assert text == SUMMARY
    assert weighted_length(text) <= 280 and deny_reasons(text) == ()
    assert format_summary({"pnl_pct": -0.5}, "Weekly") == "FlashMM weekly summary | PnL -0.50% #Sei"


@pytest.mark.parametrize(
    ("figures", "match"),
    [
        ({**FIGURES, "position": 12.5}, "not publishable"),
        ({"balance_usdc": 1000}, "not publishable"),
        ({}, "no figures"),
        ({"pnl_pct": float("nan")}, "finite"),
        ({"pnl_pct": True}, "finite"),
        ({"pnl_pct": "1.2"}, "finite"),
        ({"uptime_pct": 101}, "0..100"),
        ({"fills": -1}, "non-negative"),
        ({"fills": 2.5}, "non-negative"),
    ],
)
def test_format_summary_rejects_bad_figures(figures: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        format_summary(figures)


def test_format_summary_rejects_odd_period() -> None:
    with pytest.raises(ValueError, match="period"):
        format_summary(FIGURES, "daily https://evil.example/x")


async def test_publish_speaks_x_api_v2(x_api: FakeX) -> None:
    result = await publisher(x_api).publish_summary(FIGURES)
    assert result.status == "posted" and result.post_id == "1" and result.ok
    [(headers, body)] = x_api.hits
    assert body == {"text": SUMMARY}
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"].startswith("application/json")


ADDRESS = "sei1qyqszqgpqyqszqgpqyqszqgpqyqszqgpjnp7du"
MNEMONIC = "abandon ability able about above absent absorb abstract absurd abuse access accident"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"FlashMM pays {ADDRESS}", "sei address"),
        (f"FlashMM pays {ADDRESS.upper()}", "sei address"),
        ("vault 0x52908400098527886E0F7030069857D2E4169EE7 ok", "evm address"),
        ("k " + "ab" * 32, "hex key material"),
        ("-----BEGIN PRIVATE KEY-----", "pem key"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "token-like string"),
        (MNEMONIC, "mnemonic-like word run"),
        ("see https://flashmm.example/report", "url"),
        ("PnL +1.2% on 25,000 USDC", "currency amount"),
        ("made $1,200 today", "currency amount"),
        ("holding 5000usei", "currency amount"),
        ("net position flat", "sensitive word"),
        ("Balances look healthy", "sensitive word"),
        ("inventory skew +3%", "sensitive word"),
        ("rotated the API key", "sensitive word"),
        ("seed phrase backed up", "sensitive word"),
    ],
)
async def test_deny_filter_refuses_and_sends_nothing(x_api: FakeX, text: str, reason: str) -> None:
    assert reason in deny_reasons(text)
    result = await publisher(x_api).publish(text)
    assert result.status == "refused" and reason in result.reasons and x_api.hits == []


@pytest.mark.parametrize(
    "text",
    [
        SUMMARY,
        "FlashMM weekly summary | PnL -0.42% | uptime 100.00% #Sei",
        "Quoting SEI/USDC with 12% tighter spreads than last week",
    ],
)
def test_deny_filter_allows_plain_performance_text(text: str) -> None:
    assert deny_reasons(text) == ()


async def test_refuses_secrets_long_text_and_bad_figures(x_api: FakeX) -> None:
    pub = publisher(x_api)
    logs.register_secret("hunter2-ops-pass")
    assert "registered secret" in (await pub.publish("uptime hunter2-ops-pass")).reasons
    assert "registered secret" in (await pub.publish(f"ping {TOKEN[:20]} {TOKEN}")).reasons
    long = await pub.publish("uptime great | " * 20)
    assert long.status == "refused" and "longer than 280 characters" in long.reasons
    assert weighted_length("😀" * 141) == 282 and weighted_length("a" * 280) == 280
    huge = await pub.publish("a" * 100_000)
    assert huge.status == "refused" and "not scanned" in huge.reasons[0]
    bad = await pub.publish_summary({"position": 3})
    assert bad.status == "refused" and "not publishable" in bad.reasons[0]
    assert (await pub.publish_summary(None)).status == "refused"  # type: ignore[arg-type]
    assert (await pub.publish("   ")).status == "refused"
    assert x_api.hits == []


async def test_rate_limited_to_one_post_per_interval(x_api: FakeX) -> None:
    clock = Clock()
    pub = publisher(x_api, clock, min_interval_s=3600)
    assert (await pub.publish_summary(FIGURES)).status == "posted"
    clock.now += 3599
    limited = await pub.publish_summary(FIGURES)
    assert limited.status == "rate_limited" and limited.retry_in_s == pytest.approx(1.0)
    assert len(x_api.hits) == 1
    clock.now += 1
    assert (await pub.publish_summary(FIGURES)).status == "posted"
    assert len(x_api.hits) == 2


async def test_concurrent_publishes_post_once(x_api: FakeX) -> None:
    pub = publisher(x_api, min_interval_s=60)
    results = await asyncio.gather(*(pub.publish_summary(FIGURES) for _ in range(4)))
    assert [r.status for r in results].count("posted") == 1 and len(x_api.hits) == 1


async def test_failed_post_still_uses_the_slot_and_never_leaks_the_token(
    x_api: FakeX, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    x_api.answers = [(401, {"title": "Unauthorized", "detail": f"bad token {TOKEN}"})]
    pub = publisher(x_api, min_interval_s=60)
    failed = await pub.publish_summary(FIGURES)
    assert failed.status == "failed" and "HTTP 401" in (failed.error or "")
    assert (await pub.publish_summary(FIGURES)).status == "rate_limited"
    assert len(x_api.hits) == 1
    records = "\n".join(repr(vars(r)) for r in caplog.records if r.name.startswith("flashmm"))
    assert "social post failed" in records
    assert TOKEN not in records and TOKEN not in repr(failed) and TOKEN not in repr(pub.config)


async def test_unexpected_success_shape_is_a_failure(x_api: FakeX) -> None:
    x_api.answers = [(200, {"data": {"id": "1"}}), (201, {"errors": [{"message": "dup"}]})]
    pub = publisher(x_api, min_interval_s=0)
    assert (await pub.publish_summary(FIGURES)).status == "failed"
    assert (await pub.publish_summary(FIGURES)).status == "failed"
    assert (await pub.publish_summary(FIGURES)).status == "posted"


async def test_timeout_against_a_server_that_never_answers() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    srv = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    config = SocialConfig(
        enabled=True, bearer_token=SECRET_TOKEN, base_url=f"http://127.0.0.1:{port}", timeout_s=0.2
    )
    start = time.monotonic()
    try:
        result = await SocialPublisher(config).publish_summary(FIGURES)
    finally:
        for w in held:
            w.close()
        srv.close()
    assert result.status == "failed" and "Timeout" in (result.error or "")
    assert time.monotonic() - start < 2.0


def test_weighted_length_counts_like_x() -> None:
    assert weighted_length("abc") == 3
    assert weighted_length("日本") == 4
    assert weighted_length("") == 0
