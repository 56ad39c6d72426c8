"""Notifier and channels against real local servers: Slack/webhook over HTTP, mail over SMTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from flashmm import logs
from flashmm.notify import (
    EmailConfig,
    Notification,
    Notifier,
    NotifierConfig,
    RetryPolicy,
    Severity,
    SlackConfig,
    WebhookConfig,
)
from flashmm.notify.channels import Channel, EmailChannel, SlackChannel, WebhookChannel

SLACK_PATH = "/services/T0FLASH/B0MM/s3cr3tSlackToken42"
HOOK_PATH = "/hooks/wh-9f8e7d6c5b4a3f2e1d"
HMAC_SECRET = "hmac-secret-do-not-log"
SMTP_PASSWORD = "smtp-pass-do-not-log"
SECRETS = (SLACK_PATH, "s3cr3tSlackToken42", HOOK_PATH, HMAC_SECRET, SMTP_PASSWORD)
TS = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, attempt_timeout_s=2.0)


def note(sev: Severity = Severity.CRITICAL, key: str | None = "estop:SEI/USDC") -> Notification:
    return Notification("Emergency stop", "drawdown <limit> & halt", sev, "risk", key, TS)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHttp:
    """Records requests; answers each path from a script whose last entry repeats."""

    url: Callable[[str], str] = str
    hits: list[Hit] = field(default_factory=list)
    script: dict[str, list[tuple[int, str, dict[str, str]]]] = field(default_factory=dict)

    def answer(self, path: str, *answers: tuple[Any, ...]) -> None:
        """Each answer is (status, body) or (status, body, headers); {path} in a body echoes."""
        self.script[path] = [(a[0], a[1], a[2] if len(a) > 2 else {}) for a in answers]

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(Hit(request.path, dict(request.headers), await request.read()))
        queue = self.script.get(request.path, [(200, "ok", {})])
        status, text, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.Response(
            status=status, text=text.replace("{path}", request.path), headers=headers
        )


@pytest.fixture
async def http() -> AsyncIterator[FakeHttp]:
    fake = FakeHttp()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)  # the fake's own access log is not under test
    fake.url = lambda path: str(server.make_url(path))
    yield fake
    await server.close()


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A TCP server that accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    srv = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}{HOOK_PATH}"
    for w in held:
        w.close()
    srv.close()


def slack(fake: FakeHttp, **kw: Any) -> SlackChannel:
    return SlackChannel(SlackConfig(SecretStr(fake.url(SLACK_PATH)), **kw))


def hook(fake: FakeHttp, secret: str | None = HMAC_SECRET, **kw: Any) -> WebhookChannel:
    signing = SecretStr(secret) if secret else None
    return WebhookChannel(WebhookConfig(SecretStr(fake.url(HOOK_PATH)), signing, **kw))


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record our code logged, with all its fields, not just the message."""
    return "\n".join(repr(vars(r)) for r in caplog.records if r.name.startswith("flashmm"))


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_slack_wire_format(http: FakeHttp) -> None:
    result = await Notifier([slack(http)], retry=FAST).notify(note())
    assert result.ok and result.by_channel()["slack"].attempts == 1
    [hit] = http.on(SLACK_PATH)
    assert hit.headers["Content-Type"].startswith("application/json")
    header = "[CRITICAL] Emergency stop"
    assert json.loads(hit.body) == {
        "text": f":rotating_light: {header}: drawdown &lt;limit&gt; &amp; halt",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "drawdown &lt;limit&gt; &amp; halt"},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "*source:* risk | *key:* estop:SEI/USDC | 2024-05-01T12:00:00Z",
                    }
                ],
            },
        ],
    }


async def test_webhook_body_and_hmac_signature(http: FakeHttp) -> None:
    http.answer(HOOK_PATH, (204, ""))
    assert (await Notifier([hook(http)], retry=FAST).notify(note())).ok
    [hit] = http.on(HOOK_PATH)
    assert json.loads(hit.body) == {
        "title": "Emergency stop",
        "text": "drawdown <limit> & halt",
        "severity": "critical",
        "source": "risk",
        "dedup_key": "estop:SEI/USDC",
        "ts": "2024-05-01T12:00:00Z",
    }
    expected = hmac.new(HMAC_SECRET.encode(), hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["X-FlashMM-Signature"] == f"sha256={expected}"
    assert (await Notifier([hook(http, None)], retry=FAST).notify(note())).ok
    assert "X-FlashMM-Signature" not in http.on(HOOK_PATH)[1].headers  # no secret: unsigned


async def test_retries_500_and_429_then_succeeds(http: FakeHttp) -> None:
    http.answer(SLACK_PATH, (500, "boom"), (429, "slow down", {"Retry-After": "0"}), (200, "ok"))
    result = await Notifier([slack(http)], retry=FAST).notify(note())
    assert result.ok and result.by_channel()["slack"].attempts == 3
    bodies = [h.body for h in http.on(SLACK_PATH)]
    assert len(bodies) == 3 and len(set(bodies)) == 1


async def test_backoff_is_exponential_capped_and_honours_retry_after(http: FakeHttp) -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_delay_s=0.3, attempt_timeout_s=2)
    http.answer(HOOK_PATH, (503, ""), (503, ""), (503, ""), (429, "", {"Retry-After": "0.25"}))
    result = await Notifier([hook(http)], retry=policy, sleep=sleep).notify(note())
    assert waits == [0.1, 0.2, 0.3, 0.3]
    r = result.by_channel()["webhook"]
    assert not r.ok and r.attempts == 5 and "HTTP 429" in (r.error or "")
    assert len(http.on(HOOK_PATH)) == 5


@pytest.mark.parametrize(
    ("path", "answer", "error"),
    [
        (SLACK_PATH, (200, "invalid_payload"), "unexpected Slack answer 'invalid_payload'"),
        (SLACK_PATH, (403, "invalid_token"), "HTTP 403: 'invalid_token'"),
        (HOOK_PATH, (404, "no route for {path}"), "HTTP 404: 'no route for ***'"),
    ],
)
async def test_permanent_failures_are_not_retried(
    http: FakeHttp, path: str, answer: tuple[int, str], error: str
) -> None:
    http.answer(path, answer)
    channel = slack(http) if path == SLACK_PATH else hook(http)
    [r] = (await Notifier([channel], retry=FAST).notify(note())).channels
    assert (r.ok, r.attempts, r.error) == (False, 1, error) and len(http.hits) == 1


async def test_per_attempt_timeout_against_a_server_that_never_answers(silent_url: str) -> None:
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=0.2)
    channel = WebhookChannel(WebhookConfig(SecretStr(silent_url)))
    start = time.monotonic()
    result = await Notifier([channel], retry=policy).notify(note())
    r = result.by_channel()["webhook"]
    assert not r.ok and r.attempts == 2 and "timed out" in (r.error or "")
    assert time.monotonic() - start < 2.0


async def test_connection_refused_is_retried_and_reported_without_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = SlackChannel(SlackConfig(SecretStr(f"http://127.0.0.1:{port}{SLACK_PATH}")))
    result = await Notifier([channel], retry=FAST).notify(note())
    r = result.by_channel()["slack"]
    assert not r.ok and r.attempts == 3 and r.error
    assert_no_secrets(repr(result))


async def test_routing_by_severity(http: FakeHttp) -> None:
    notifier = Notifier(
        [slack(http), hook(http, severities=frozenset({Severity.CRITICAL}))], retry=FAST
    )
    info = await notifier.notify(note(Severity.INFO, "a"))
    assert [r.channel for r in info.channels] == ["slack"]
    crit = await notifier.notify(note(Severity.CRITICAL, "b"))
    assert sorted(r.channel for r in crit.channels) == ["slack", "webhook"] and crit.ok
    assert len(http.on(SLACK_PATH)) == 2 and len(http.on(HOOK_PATH)) == 1
    only_crit = Notifier([hook(http, severities=frozenset({"critical"}))], retry=FAST)
    unrouted = await only_crit.notify(note(Severity.WARNING))
    assert not unrouted.channels and not unrouted.ok and "no channel" in (unrouted.error or "")


async def test_dedup_window_suppresses_counts_and_expires(http: FakeHttp) -> None:
    now = [1000.0]
    notifier = Notifier([slack(http)], retry=FAST, dedup_window_s=60, clock=lambda: now[0])
    assert (await notifier.notify(note())).ok
    for expected in (1, 2):
        again = await notifier.notify(note())
        assert again.suppressed and not again.channels and again.suppressed_repeats == expected
    assert notifier.suppressed_count("estop:SEI/USDC") == 2
    assert (await notifier.notify(note(key="other"))).ok  # another key is not suppressed
    now[0] += 61
    later = await notifier.notify(note())
    assert later.ok and later.suppressed_repeats == 2
    assert notifier.suppressed_count("estop:SEI/USDC") == 0
    assert "2 repeat(s) suppressed" in json.loads(http.on(SLACK_PATH)[-1].body)["text"]
    assert len(http.on(SLACK_PATH)) == 3


async def test_concurrent_repeats_deliver_once(http: FakeHttp) -> None:
    notifier = Notifier([slack(http)], retry=FAST)
    results = await asyncio.gather(*(notifier.notify(note()) for _ in range(5)))
    assert sum(r.delivered for r in results) == 1 and sum(r.suppressed for r in results) == 4
    assert len(http.on(SLACK_PATH)) == 1


async def test_failed_delivery_does_not_start_the_dedup_window(http: FakeHttp) -> None:
    http.answer(SLACK_PATH, (403, "invalid_token"), (200, "ok"))
    notifier = Notifier([slack(http)], retry=FAST)
    assert not (await notifier.notify(note())).delivered
    second = await notifier.notify(note())
    assert second.ok and not second.suppressed


class Broken(Channel):
    def secrets(self) -> tuple[str, ...]:
        return (HMAC_SECRET,)

    async def _send(self, n: Notification, timeout_s: float) -> None:
        raise RuntimeError(f"bug holding {HMAC_SECRET}")


async def test_never_raises_and_scrubs_channel_bugs(http: FakeHttp) -> None:
    notifier = Notifier([Broken("broken"), slack(http)], retry=FAST)
    result = await notifier.notify(note())
    broken = result.by_channel()["broken"]
    assert result.delivered and not result.ok and result.by_channel()["slack"].ok
    assert broken.attempts == 3 and broken.error == "RuntimeError: bug holding ***"
    bad = await notifier.notify("not a notification")  # type: ignore[arg-type]
    assert bad.error and "AttributeError" in bad.error and not bad.channels


@dataclass
class MailBox:
    answers: list[str] = field(default_factory=list)
    mails: list[tuple[str, list[str], Message]] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802  (the name aiosmtpd calls)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.answers:
            return self.answers.pop(0)
        assert isinstance(envelope.content, bytes) and envelope.mail_from is not None
        self.mails.append(
            (envelope.mail_from, envelope.rcpt_tos, message_from_bytes(envelope.content))
        )
        return "250 Message accepted"


def check_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data == (b"bot", SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=ok)  # handled=False: the server answers 535


@asynccontextmanager
async def smtp_server(box: MailBox, **kw: Any) -> AsyncIterator[int]:
    """An aiosmtpd server on this loop (smtplib runs in a thread); yields its port."""
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: SMTP(box, **kw), "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()


def email(port: int, **kw: Any) -> EmailChannel:
    base: dict[str, Any] = {"starttls": False, "severities": frozenset(Severity)}
    return EmailChannel(
        EmailConfig("127.0.0.1", "mm@flashmm.test", ("ops@flashmm.test",), port, **{**base, **kw})
    )


async def test_email_over_smtp_with_login_and_a_temporary_failure() -> None:
    box = MailBox(answers=["451 4.3.0 try again later"])
    async with smtp_server(box, authenticator=check_login, auth_require_tls=False) as port:
        channel = email(port, username="bot", password=SecretStr(SMTP_PASSWORD))
        title = "Key rotated\r\nBcc: evil@x"  # header injection attempt
        n = Notification(title, "new key live", Severity.WARNING, "keys", None, TS)
        result = await Notifier([channel], retry=FAST).notify(n)
    assert result.ok and result.by_channel()["email"].attempts == 2
    [(sender, rcpts, msg)] = box.mails
    assert sender == "mm@flashmm.test" and rcpts == ["ops@flashmm.test"]
    assert msg["Subject"] == "[WARNING] Key rotated Bcc: evil@x" and msg["Bcc"] is None
    assert msg["To"] == "ops@flashmm.test" and msg.get_content_type() == "text/plain"
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode().replace("\r\n", "\n")
    assert body.startswith("new key live\n\n--\nseverity: warning\nsource: keys\n")


async def test_email_wrong_password_fails_once_without_leaking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with smtp_server(MailBox(), authenticator=check_login, auth_require_tls=False) as port:
        channel = email(port, username="bot", password=SecretStr(SMTP_PASSWORD + "x"))
        result = await Notifier([channel], retry=FAST).notify(note())
    r = result.by_channel()["email"]
    assert not r.ok and r.attempts == 1 and "535" in (r.error or "")
    assert "notification failed" in caplog.text
    assert_no_secrets(repr(result), logged(caplog))


async def test_starttls_required_but_not_offered_fails_permanently() -> None:
    async with smtp_server(MailBox()) as port:
        result = await Notifier([email(port, starttls=True)], retry=FAST).notify(note())
    r = result.by_channel()["email"]
    assert not r.ok and r.attempts == 1 and "STARTTLS" in (r.error or "")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test cert")
async def test_email_over_starttls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    box = MailBox()
    async with smtp_server(box, tls_context=tls, require_starttls=True) as port:
        good = await Notifier([email(port, starttls=True, ca_file=str(cert))]).notify(note())
        untrusted = await Notifier([email(port, starttls=True)], retry=FAST).notify(note())
    assert good.ok and len(box.mails) == 1
    assert box.mails[0][2]["Subject"] == "[CRITICAL] Emergency stop"
    r = untrusted.by_channel()["email"]
    assert not r.ok and r.attempts == 1 and "TLS failed" in (r.error or "")


async def test_secrets_absent_from_logs_results_and_reprs(
    http: FakeHttp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http.answer(SLACK_PATH, (500, "upstream said {path}"))
    http.answer(HOOK_PATH, (502, "bad gateway at {path}"), (400, "bad request {path}"))
    # plain strings, as YAML would give them, are wrapped as secrets
    slack_config = SlackConfig(http.url(SLACK_PATH))  # type: ignore[arg-type]
    hook_config = WebhookConfig(http.url(HOOK_PATH), HMAC_SECRET)  # type: ignore[arg-type]
    config = NotifierConfig((slack_config, hook_config), retry=FAST)
    notifier = Notifier.from_config(config)
    result = await notifier.notify(note())
    assert not result.delivered and all(r.error for r in result.channels)
    assert any("***" in (r.error or "") for r in result.channels)
    assert "notification failed" in caplog.text and "retrying" in caplog.text
    assert "HTTP 502" in logged(caplog)  # the error fields are logged, scrubbed
    assert_no_secrets(logged(caplog), repr(result), repr(config), str(config))
    assert_no_secrets(repr(notifier.channels))
    assert logs.redact(f"x {HMAC_SECRET}") == "x ***"  # registered for the JSON log output too


def test_config_validation_never_quotes_secrets() -> None:
    with pytest.raises(ValueError, match=r"slack\.webhook_url") as e:
        SlackConfig(f"ftp://x{SLACK_PATH}")  # type: ignore[arg-type]  # plain str is wrapped
    assert SLACK_PATH not in str(e.value)
    url = SecretStr(f"https://hooks.example{SLACK_PATH}")
    with pytest.raises(ValueError, match="unique"):
        NotifierConfig((SlackConfig(url), SlackConfig(url)))
    with pytest.raises(ValueError, match="severity"):
        SlackConfig(url, severities=frozenset({"urgent"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recipients"):
        EmailConfig("smtp.x", "a@x", ())
    with pytest.raises(ValueError, match="single valid address"):
        EmailConfig("smtp.x", "a@x", ("ops@x\r\nBcc: evil@y",))
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="attempt_timeout_s"):
        RetryPolicy(attempt_timeout_s=float("nan"))


def test_notification_validation() -> None:
    with pytest.raises(ValueError, match="severity"):
        Notification("t", "x", "urgent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="title"):
        Notification("  ", "x")
    with pytest.raises(ValueError, match="timezone"):
        Notification("t", "x", ts=datetime(2024, 1, 1))
    n = Notification("t", "x", "WARNING")  # type: ignore[arg-type]
    assert n.severity is Severity.WARNING and n.key == "flashmm:warning:t"
