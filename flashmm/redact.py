"""Secrets left out of JSON-like values that get written down: the effective configuration
in a backup, the parameters of an audit entry.

Settings keep secrets out of files by design (they name environment variables), but a DSN
or URL may still carry a password, and a request or a future field might hold one: values
of fields whose name looks secret are replaced, passwords in URLs are masked, and fields
naming an environment variable (``*_env``) are kept, since they hold a name and not the
secret. A raw query string (an audit entry's ``_query``) gets the same treatment through
``redact_query``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
_SECRET_NAME = re.compile(
    r"(password|passwd|secret|token|mnemonic|api_?key|private_?key|credential|auth)", re.I
)
_SECRET_QUERY = re.compile(r"(password|secret|token|key|signature|credential)", re.I)


def secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not name.lower().endswith("_env")


def mask_url(value: str) -> str:
    """The URL with a password and secret-looking query values masked; other text as is."""
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = "&".join(
        f"{p.partition('=')[0]}={MASK}" if _SECRET_QUERY.search(p.partition("=")[0]) else p
        for p in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(value: Any, name: str = "") -> Any:
    """A copy of a JSON-like value with secrets masked."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, name) for v in value]
    if name and secret_name(name) and value not in (None, "", False):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    return value


def redact_query(query: str) -> str:
    """A raw query string (``a=1&token=x``) with the values of secret-looking parameters
    masked, by the same names as body fields and URL query values."""
    out = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        plain = unquote_plus(name)
        if eq and (secret_name(plain) or _SECRET_QUERY.search(plain)):
            part = f"{name}={MASK}"
        out.append(part)
    return "&".join(out)
