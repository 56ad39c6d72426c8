"""Shared paths and helpers of the deployment tests (no servers needed)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
TOOLS = REPO / ".venv-tools" / "bin"


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_render", K8S / "render.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["k8s_render"] = mod
    spec.loader.exec_module(mod)
    return mod


render = _load_renderer()


def tool(name: str) -> str:
    """A tool from .venv-tools; a clear failure (not a skip) when it is missing."""
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools` (builds .venv-tools)")
    return str(path)


def kubectl() -> str | None:
    return shutil.which("kubectl")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {o.name: render.render(o) for o in OVERLAYS}


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    return data
