"""``MarketMaker``'s insides stay inside: no module outside the engine's own
(``hotpath/engine.py`` and its ``hotpath/engine_*.py`` helpers) reads or writes a market
maker's order manager (``.om``), risk engine (``.risk``) or operator switch (``.enabled``);
they go through its operations (``position``, ``open_order_count``, ``trading_state``,
``limits``, ``risk_view()``, ``on_data``, ``on_cancelled``, ...).

Read from the code with ``ast``, nothing imported: an attribute ``om``/``risk``/``enabled`` of
an expression that names a market maker: a name or attribute called ``mm``, ``maker``,
``market_maker`` or ``engine`` (``ql.mm.risk``, ``self._mm.om``), or a parameter, variable or
attribute annotated ``MarketMaker`` or assigned ``MarketMaker(...)`` in the same module.
The tests may reach in (white-box tests of the engine's internals); the benchmarks may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("flashmm", "hotpath", "workflows", "activities", "workers", "api", "cli", "bench")
INSIDES = frozenset({"om", "risk", "enabled"})
MAKER_NAMES = frozenset({"mm", "_mm", "maker", "_maker", "market_maker", "engine"})


def _is_engine_module(rel: str) -> bool:
    return rel == "hotpath/engine.py" or (rel.startswith("hotpath/engine_") and rel.count("/") == 1)


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _names_maker(annotation: ast.expr | None) -> bool:
    return annotation is not None and "MarketMaker" in ast.unparse(annotation)


def _maker_names(tree: ast.Module) -> set[str]:
    """The names that hold a market maker in this module, besides the usual ones."""
    names = set(MAKER_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and _names_maker(node.annotation):
            names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and _names_maker(node.annotation):
            if (name := _last_name(node.target)) is not None:
                names.add(name)
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and _last_name(node.value.func) == "MarketMaker"
        ):
            names.update(n for t in node.targets if (n := _last_name(t)) is not None)
    return names


def reach_ins(source: str) -> list[tuple[int, str]]:
    """(line, expression) of each access to a market maker's insides in ``source``."""
    tree = ast.parse(source)
    makers = _maker_names(tree)
    return [
        (node.lineno, ast.unparse(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in INSIDES
        and _last_name(node.value) in makers
    ]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in SCANNED:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if "__pycache__" not in path.parts and not _is_engine_module(rel):
                out.append((rel, path))
    return out


def test_the_scan_sees_the_project() -> None:
    rels = {rel for rel, _ in _modules()}
    assert {"hotpath/metrics.py", "hotpath/pnl_record.py", "bench/run.py"} <= rels
    assert "hotpath/engine.py" not in rels and "hotpath/engine_ops.py" not in rels


@pytest.mark.parametrize(
    "source",
    [
        "mm.om.live",
        "x = ql.mm.risk.state",
        "self._mm.enabled = False",
        "maker.risk.last_data_ns = 1",
        "def f(m: MarketMaker) -> None:\n    m.om.position",
        "def f(m: 'MarketMaker | None') -> None:\n    m.risk",
        "bot = MarketMaker(a, b, c)\nbot.om.on_cancelled('x')",
        "class A:\n    maker: MarketMaker\n    def f(self) -> None:\n        self.maker.risk",
    ],
)
def test_the_scan_finds_a_reach_in(source: str) -> None:
    assert len(reach_ins(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "settings.risk.max_drawdown",
        "cfg.stores.enabled",
        "self.enabled",
        "mm.position.lots",
        "mm.risk_view().enabled",
        "sinks.risk(mm)",
    ],
)
def test_the_scan_leaves_other_attributes_alone(source: str) -> None:
    assert reach_ins(source) == []


def test_nothing_outside_the_engine_reaches_into_it() -> None:
    found = [
        f"{rel}:{line}: {expr}"
        for rel, path in _modules()
        for line, expr in reach_ins(path.read_text(encoding="utf-8"))
    ]
    assert not found, "reaches into MarketMaker's insides:\n" + "\n".join(found)
