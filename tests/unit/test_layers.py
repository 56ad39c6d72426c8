"""The import rules of ``docs/architecture.md`` ("may import"), read from the code: every
``import`` of every module of the project's packages, at any depth (an import inside a
function is an edge like any other), parsed with ``ast``, nothing imported.

The kernel (``flashmm/``) stands on nothing of the project; the hot path and the activities on
the kernel; workflows on the kernel's inputs and domain types and on the activities, passed
through the sandbox; the workers on all of those; the API on the kernel and the workflows'
types and starters; the command line (``cli/``) on everything, and nothing imports it.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = ("flashmm", "hotpath", "workflows", "activities", "workers", "api", "cli")
OUTSIDE = ("tests", "bench")  # may import everything; nothing imports them

WORKFLOW_TYPES = ("workflows.types", "workflows.*_types")

# what each package may import of the project, besides itself (module names or patterns; a
# name covers its submodules). Only the workflows need the sandbox pass-through.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "flashmm": (),
    "hotpath": ("flashmm",),
    "activities": ("flashmm", *WORKFLOW_TYPES, "workflows.policies"),
    "workflows": ("flashmm.inputs", "flashmm.domain", "activities"),
    "workers": ("flashmm", "hotpath", "workflows", "activities"),
    "api": ("flashmm", *WORKFLOW_TYPES, "workflows.starters"),
    "cli": ("flashmm", "hotpath", "workflows", "activities", "workers", "api"),
}
PASSED_THROUGH = {"workflows": ("activities",)}  # only inside imports_passed_through()

# known departures from the table, each with the reason it is not fixed yet; an entry that
# no longer matches an import fails the test (so the list only shrinks)
KNOWN: dict[tuple[str, str], str] = {}

_DOTTED = re.compile(rf"^(?:{'|'.join(PROJECT[1:])})(?:\.[A-Za-z_]\w*)+$")


@dataclass(frozen=True)
class Edge:
    """One import of a project module by a project module."""

    path: str  # relative to the repository, posix
    line: int
    module: str  # absolute, as imported (``from a import b``: ``a.b`` when b is a module)
    passed_through: bool  # inside ``with workflow.unsafe.imports_passed_through():``


def _modules() -> Iterator[tuple[str, Path]]:
    for pkg in PROJECT:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield pkg, path


def _package_of(path: Path) -> list[str]:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return parts if parts[-1] == "__init__" else parts[:-1]


def _is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _passthrough(stack: list[ast.AST]) -> bool:
    return any(
        isinstance(n, ast.With)
        and any(ast.unparse(i.context_expr).endswith("imports_passed_through()") for i in n.items)
        for n in stack
    )


def _imported(node: ast.AST, path: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        pkg = _package_of(path)
        base = pkg[: len(pkg) - (node.level - 1)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    subs = [f"{module}.{a.name}" for a in node.names if _is_module(f"{module}.{a.name}")]
    return subs or [module]


def _dynamic(node: ast.AST) -> list[str]:
    """Module names given as string literals to importlib (an import all the same)."""
    if not isinstance(node, ast.Call) or not node.args:
        return []
    f = ast.unparse(node.func)
    arg = node.args[0]
    if f.split(".")[-1] in ("import_module", "find_spec", "__import__") and (
        isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    ):
        return [arg.value]
    return []


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, list[ast.AST]]]:
    stack: list[ast.AST] = []

    def visit(node: ast.AST) -> Iterator[tuple[ast.AST, list[ast.AST]]]:
        yield node, stack
        stack.append(node)
        for child in ast.iter_child_nodes(node):
            yield from visit(child)
        stack.pop()

    yield from visit(tree)


def _edges() -> Iterator[tuple[str, Edge]]:
    for pkg, path in _modules():
        rel = path.relative_to(REPO).as_posix()
        for node, stack in _walk(ast.parse(path.read_text(), rel)):
            for module in _imported(node, path) + _dynamic(node):
                top = module.split(".")[0]
                if top in PROJECT + OUTSIDE and top != pkg:
                    line = getattr(node, "lineno", 0)
                    yield pkg, Edge(rel, line, module, _passthrough(stack))


def _allowed(module: str, patterns: tuple[str, ...]) -> bool:
    return any(
        module == p or module.startswith(p + ".") or fnmatch.fnmatchcase(module, p)
        for p in patterns
    )


EDGES = list(_edges())


@pytest.mark.parametrize("pkg", PROJECT)
def test_each_package_imports_only_what_the_architecture_allows(pkg: str) -> None:
    bad = []
    for owner, e in EDGES:
        if owner != pkg or (e.path, e.module) in KNOWN:
            continue
        if not _allowed(e.module, MAY_IMPORT[pkg]):
            bad.append(f"{e.path}:{e.line} imports {e.module}")
        elif _allowed(e.module, PASSED_THROUGH.get(pkg, ())) and not e.passed_through:
            bad.append(f"{e.path}:{e.line} imports {e.module} outside imports_passed_through()")
    assert not bad, f"{pkg}/ may import {MAY_IMPORT[pkg] or 'nothing of the project'}:\n" + (
        "\n".join(bad)
    )


def test_nothing_imports_the_command_line_the_tests_or_the_benchmarks() -> None:
    bad = [
        f"{e.path}:{e.line} imports {e.module}"
        for _, e in EDGES
        if e.module.split(".")[0] in ("cli", *OUTSIDE)
    ]
    assert not bad, "\n".join(bad)


def test_known_departures_are_still_there() -> None:
    """A fixed departure leaves the list, so it cannot come back unnoticed."""
    seen = {(e.path, e.module) for _, e in EDGES}
    assert not set(KNOWN) - seen, f"no longer imported, remove from KNOWN: {set(KNOWN) - seen}"


def test_the_kernel_names_no_module_above_it() -> None:
    """No hidden edge: a module of the planes or the CLI named in a string (for importlib)."""
    bad = []
    for pkg, path in _modules():
        if pkg != "flashmm":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _DOTTED.match(node.value)
            ):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not bad, "\n".join(bad)


def test_every_package_has_a_rule_and_a_row_in_the_architecture() -> None:
    on_disk = {
        p.parent.name
        for p in REPO.glob("*/__init__.py")
        if p.parent.name not in OUTSIDE and not p.parent.name.startswith(".")
    }
    assert on_disk == set(PROJECT) == set(MAY_IMPORT)
    doc = (REPO / "docs" / "architecture.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_]+)/` \|", doc, re.MULTILINE))
    assert set(PROJECT) <= rows


def test_the_rules_see_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    """The parser itself: a lazy import and a relative import are edges too."""
    src = (
        "import os\n"
        "def f():\n"
        "    from hotpath.engine import MarketMaker\n"
        "with workflow.unsafe.imports_passed_through():\n"
        "    from activities import hotpath\n"
        "importlib.import_module('api.app')\n"
    )
    found = [
        (m, _passthrough(stack))
        for node, stack in _walk(ast.parse(src))
        for m in _imported(node, REPO / "flashmm" / "x.py") + _dynamic(node)
    ]
    assert ("hotpath.engine", False) in found
    assert ("activities.hotpath", True) in found
    assert ("api.app", False) in found
    rel = ast.parse("from ..config import Settings").body[0]
    assert _imported(rel, REPO / "flashmm" / "ml" / "x.py") == ["flashmm.config"]
