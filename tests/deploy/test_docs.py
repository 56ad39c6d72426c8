"""Docs that must track the code: the configuration reference and the runbook's anchors."""

from __future__ import annotations

import re

import yaml

from flashmm.config.reference import markdown
from tests.deploy.conftest import REPO


def test_configuration_reference_is_current() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert doc == markdown(), (
        "docs/configuration.md is stale: "
        ".venv/bin/python -m flashmm.config.reference > docs/configuration.md"
    )


def _anchors(markdown_text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown_text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_runbook_has_an_anchor_for_every_alert() -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())
    anchors = _anchors((REPO / "docs" / "runbook.md").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        path, _, frag = url.partition("#")
        assert path == "docs/runbook.md" and frag == rule["alert"].lower(), url
        assert frag in anchors, f"docs/runbook.md has no heading for {rule['alert']}"


def test_docs_link_to_existing_anchors() -> None:
    docs = REPO / "docs"
    for page in docs.glob("*.md"):
        for target, frag in re.findall(r"\]\(([\w./-]*\.md)#([\w-]+)\)", page.read_text()):
            dest = (page.parent / target).resolve()
            assert dest.exists(), f"{page.name}: {target}"
            assert frag in _anchors(dest.read_text()), f"{page.name}: {target}#{frag}"
