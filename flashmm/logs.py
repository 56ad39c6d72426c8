"""Structured logging: one JSON object per line, context fields from contextvars, per-component
levels, and redaction of registered secret values from every message and field.

    setup_logging("INFO", {"flashmm.notify": "DEBUG", "aiohttp": "WARNING"})
    register_secret(api_token)
    with bind_context(market="SEI/USDC", workflow_id="wf-1"):
        log.info("quote placed", extra={"order_id": "o-7"})
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import SecretStr

CONTEXT_FIELDS: tuple[str, ...] = ("market", "order_id", "workflow_id")
REDACTED = "***"
MIN_SECRET_LEN = 4

_context: ContextVar[Mapping[str, str] | None] = ContextVar("flashmm_log_context", default=None)
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()
_configured_components: set[str] = set()

# attributes every LogRecord has; anything else on a record came from `extra=` or a filter
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


# -- context ---------------------------------------------------------------------------------


@contextmanager
def bind_context(
    *, market: str | None = None, order_id: str | None = None, workflow_id: str | None = None
) -> Iterator[None]:
    """Add context fields to every log record made inside the block (nested blocks merge)."""
    values = zip(CONTEXT_FIELDS, (market, order_id, workflow_id), strict=True)
    merged = {**current_context(), **{k: str(v) for k, v in values if v is not None and v != ""}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    """The context fields bound in this task or thread."""
    return dict(_context.get() or {})


# -- secrets ---------------------------------------------------------------------------------


def register_secret(value: str | SecretStr) -> None:
    """Redact `value` from all log output from now on. Values under 4 characters are refused:
    redacting them would mangle ordinary text while protecting nothing."""
    global _secrets
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(raw, str):
        raise TypeError(f"secret must be a string or SecretStr, got {type(raw).__name__}")
    if len(raw) < MIN_SECRET_LEN:
        raise ValueError(f"secret is too short to redact safely (< {MIN_SECRET_LEN} characters)")
    with _secrets_lock:
        if raw not in _secrets:
            # longest first, so a secret that contains another is replaced whole
            _secrets = tuple(sorted((*_secrets, raw), key=len, reverse=True))


def known_secrets() -> tuple[str, ...]:
    return _secrets


def clear_secrets() -> None:
    """Forget all registered secrets (for tests)."""
    global _secrets
    with _secrets_lock:
        _secrets = ()


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ***."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


# -- filters and formatters ------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Copy the bound context fields onto the record when it is made (fields passed with
    `extra=` win), so they survive handlers that format later or in another thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactionFilter(logging.Filter):
    """Replace registered secrets by *** in the message, every extra field, the exception
    text and the stack text of each record that passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it for the handler to report
            return True
        record.msg, record.args = redact(message), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _iso_utc(created: float) -> str:
    ts = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return ts.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, context and extra fields,
    exception details. All string values pass through redaction once more."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in current_context().items():
            out[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            exc = record.exc_info[1]
            out["exc_type"] = type(exc).__name__ if exc is not None else None
            out["exc_message"] = str(exc) if exc is not None else None
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_redact_value(out), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the same fields as the JSON output, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**current_context()}
        fields.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and k[:1] != "_"}
        )
        ctx = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{_iso_utc(record.created)} {record.levelname:<8} {record.name}: "
        line += record.getMessage() + (f" [{ctx}]" if ctx else "")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


# -- setup -----------------------------------------------------------------------------------


def parse_level(level: str) -> int:
    """The numeric level for a name such as "info" or "WARNING"; ValueError otherwise."""
    if not isinstance(level, str):
        raise ValueError(f"log level must be a level name, got {level!r}")
    value = logging.getLevelNamesMapping().get(level.strip().upper())
    if value is None:
        raise ValueError(f"unknown log level {level!r}")
    return value


def setup_logging(
    level: str = "INFO",
    component_levels: dict[str, str] | None = None,
    json_output: bool = True,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing one installed by an earlier call).

    `component_levels` maps a logger name prefix ("flashmm.notify", "aiohttp") to its own
    level; it applies to that logger and every logger below it. Bad level names or empty
    prefixes raise ValueError before anything is changed."""
    root_level = parse_level(level)
    components: dict[str, int] = {}
    for prefix, lvl in (component_levels or {}).items():
        if not isinstance(prefix, str) or not prefix.strip() or prefix.strip() == "root":
            raise ValueError(f"component logger prefix must be a logger name, got {prefix!r}")
        components[prefix.strip()] = parse_level(lvl)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_flashmm_handler", False)]:
        root.removeHandler(old)
        old.close()
    for name in _configured_components - components.keys():
        logging.getLogger(name).setLevel(logging.NOTSET)
    _configured_components.clear()

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._flashmm_handler = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter() if json_output else TextFormatter())
    root.addHandler(handler)
    root.setLevel(root_level)
    for name, value in components.items():
        logging.getLogger(name).setLevel(value)
        _configured_components.add(name)
    return handler
