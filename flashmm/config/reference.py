"""The configuration reference (docs/configuration.md), generated from the settings object.

    python -m flashmm.config.reference > docs/configuration.md

Every setting is listed with its YAML path, its environment variable (``FLASHMM_`` prefix,
``__`` between levels), its type and its default, read from ``Settings`` itself so the page
cannot drift from the code (tests/deploy checks it is current). Variables the code reads
directly (secrets, process wiring) follow, each with what it is for.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flashmm.config.settings import Settings

PREFIX = "FLASHMM_"
DELIMITER = "__"

# Variables read directly with os.environ (not settings fields), what they hold, and where they
# belong in a deployment: "secret" (a Kubernetes Secret / deploy/.env), "wiring" (set by the
# manifests), "dev" (local development and tests only).
DIRECT: dict[str, tuple[str, str]] = {
    "FLASHMM_CONFIG": ("wiring", "path of the YAML settings file (also `--config`)"),
    "FLASHMM_TEMPORAL_ADDRESS": (
        "wiring",
        "Temporal frontend host:port when no address is passed (`control.temporal_address` "
        "is used by the commands)",
    ),
    "OTEL_EXPORTER_OTLP_ENDPOINT": (
        "wiring",
        "OTLP/HTTP base URL of a trace collector (e.g. `http://jaeger:4318`) when "
        "`telemetry.otlp_endpoint` is empty; unset and empty: tracing off. The exporter also "
        "reads the other standard `OTEL_*` variables, and `OTEL_SERVICE_NAME` names the process",
    ),
    "FLASHMM_CODEC_KEYS": (
        "secret",
        "Temporal payload codec keys, current first: `id:base64key[,id:base64key...]`",
    ),
    "FLASHMM_KEYSTORE_SECRET": ("secret", "passphrase of the keystore (at least 16 characters)"),
    "FLASHMM_CODEC_SERVER_TOKEN": (
        "secret",
        "bearer token operators present to `flashmm codec-server` (Temporal UI codec endpoint)",
    ),
    "FLASHMM_API_PASSWORD": (
        "operator",
        "password for `flashmm api-user add` or `passwd` (else stdin or a prompt)",
    ),
    "FLASHMM_API_ADMIN_PASSWORD": ("dev", "admin password `flashmm demo` gives the API"),
    "FLASHMM_PROFILE": (
        "dev",
        "the running demo's connection profile client commands read (default "
        "`~/.flashmm/demo-profile.json`; `none` turns it off)",
    ),
    "FLASHMM_RUN_DIR": ("dev", "where `flashmm services` keeps local server data (default .run/)"),
    "FLASHMM_DEV_PG_PORT": ("dev", "port of the local PostgreSQL of `flashmm services`"),
    "FLASHMM_DEV_REDIS_PORT": ("dev", "port of the local Redis of `flashmm services`"),
    "FLASHMM_DEV_VM_PORT": ("dev", "port of the local VictoriaMetrics of `flashmm services`"),
    "USER": ("wiring", "default `--actor` recorded by the operator commands"),
}


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _render(value: Any) -> str:
    text = json.dumps(_plain(value), default=str, separators=(", ", ": "))
    return text.replace("|", "\\|")


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def rows(model: type[BaseModel] = Settings, path: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """One row per leaf setting: path, env, type, default."""
    out: list[dict[str, str]] = []
    for name, field in model.model_fields.items():
        here = (*path, name)
        nested = _model_class(field.annotation)
        if nested is not None:
            out.extend(rows(nested, here))
            continue
        out.append(
            {
                "path": ".".join(here),
                "env": PREFIX + DELIMITER.join(p.upper() for p in here),
                "type": _type_name(field.annotation),
                "default": _render(_default(field)),
            }
        )
    return out


def env_names() -> set[str]:
    """Every environment variable FlashMM reads: the settings' and the direct ones, plus the
    variables named by ``*_env`` settings (secrets)."""
    names = {r["env"] for r in rows()}
    names |= set(DIRECT)
    names |= secret_env_defaults()
    return names


def secret_env_defaults() -> set[str]:
    """Defaults of the ``*_env`` settings: the variables that hold secrets."""
    return {
        json.loads(r["default"])
        for r in rows()
        if r["path"].endswith("_env") and r["default"] != "null"
    }


def markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- generated by `python -m flashmm.config.reference > docs/configuration.md`;"
        " do not edit -->",
        "",
        "Generated from the settings object (`flashmm/config/settings.py`). Regenerate after"
        " changing a setting:",
        "",
        "```sh",
        ".venv/bin/python -m flashmm.config.reference > docs/configuration.md",
        "```",
        "",
        "`tests/deploy/test_config_reference.py` fails while this page is out of date, and",
        "`tests/deploy/test_env_vars.py` while a variable the code reads is missing here or"
        " from the manifests.",
        "",
        "Sources, highest first: command-line overrides, environment variables, the YAML file"
        " (`--config` or `FLASHMM_CONFIG`), defaults. A variable is `FLASHMM_` plus the"
        " setting's path in upper case with `__` between levels; lists and mappings take JSON"
        ' (`FLASHMM_CONTROL__HOTPATHS=\'{"SEI/USDC": "http://127.0.0.1:7001"}\'`). An invalid'
        " value stops start-up with an error naming the setting.",
        "",
        "## Secrets",
        "",
        "Secrets are never settings and never in a file in the repository: each comes from the"
        " environment variable a `*_env` setting names (defaults below), which the deployment"
        " fills from a Kubernetes Secret (`secretKeyRef`) or `deploy/.env` (compose).",
        "",
        "| variable | named by |",
        "|---|---|",
    ]
    for r in rows():
        if r["path"].endswith("_env") and r["default"] != "null":
            lines.append(f"| `{json.loads(r['default'])}` | `{r['path']}` |")
    lines += [
        "",
        "## Variables read directly",
        "",
        "| variable | kind | what |",
        "|---|---|---|",
    ]
    for name, (kind, what) in DIRECT.items():
        lines.append(f"| `{name}` | {kind} | {what} |")
    lines += ["", "## Settings"]
    section = None
    for r in rows():
        top = r["path"].split(".")[0] if "." in r["path"] else ""
        if top != section:
            section = top
            title = f"`{top}`" if top else "top level"
            lines += ["", f"### {title}", "", "| setting | variable | type | default |"]
            lines.append("|---|---|---|---|")
        lines.append(f"| `{r['path']}` | `{r['env']}` | `{r['type']}` | `{r['default']}` |")
    return "\n".join(lines + _bounds_section()) + "\n"


def _bounds_section() -> list[str]:
    """The run-time bounds with the default settings (flashmm/config/bounds.py)."""
    from flashmm.config.bounds import LONGER_IS_SAFER, RuntimeBounds
    from flashmm.config.quoting import QuoteParams
    from flashmm.config.risk import RiskLimits

    b = RuntimeBounds.build(QuoteParams(), RiskLimits())
    lines = [
        "",
        "## Run-time bounds",
        "",
        "A running market's parameters can be changed (`PUT /v1/markets/{m}/params`, the"
        " TradingLifecycle `set_params` update, the hot path's `set_params` command) only"
        " inside these bounds. The configured `hotpath.risk` limits are **ceilings**: a risk"
        " limit may be lowered at run time, never raised above its configured value (the"
        " volatility breaker's cool-down only lengthened). Raising a ceiling takes a settings"
        " change and a restart; the hot path writes `risk_ceilings_changed` (old and new) to"
        " the audit log when it starts with other ceilings than last time, and drops saved"
        " run-time changes that no longer fit. `hotpath.bounds` narrows or moves a bound"
        ' (`{"quoting": {"gamma": [0.05, 0.5]}, "risk": {"max_position_notional": [100, 1500]}}`);'
        " a risk bound above its configured limit stops start-up. A value outside its bound,"
        " not finite, a boolean, or a fraction for an integer setting is refused (422 at the"
        " API, naming the field) and nothing changes; an accepted change is audited with old"
        " and new values. With the defaults:",
        "",
        "| parameter | low | high | note |",
        "|---|---|---|---|",
    ]
    for name, bound in b.quoting.items():
        kind = "integer" if bound.integer else ""
        lines.append(f"| `quoting.{name}` | {bound.lo:g} | {bound.hi:g} | {kind} |")
    lines.append("| `quoting.model`, `quoting.mode` | | | one of the names |")
    for name, bound in b.risk.items():
        note = "configured value is the floor" if name in LONGER_IS_SAFER else "high = configured"
        lines.append(f"| `risk.{name}` | {bound.lo:g} | {bound.hi:g} | {note} |")
    return lines


def main() -> int:
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
