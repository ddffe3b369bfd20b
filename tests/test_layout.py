"""The package layout stays a pipeline: every import runs down it, never up.

Each top-level folder (or module) of `policyc` is a stage; ALLOWED says which
other stages it may import. The test walks every module's AST (imports inside
functions too) and fails on an import the table forbids, or on a stage the
table does not know, so a new folder has to be placed in the pipeline first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "policyc"

_BASE = frozenset({"diagnostics", "collector"})  # collector: gc pauses, no policyc imports
_LANGUAGE = _BASE | {"grammar", "policy", "netmap"}
_COMPILED = _LANGUAGE | {"compiler", "analysis"}

# stage -> the stages it may import (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "__init__": frozenset(),
    "diagnostics": frozenset(),
    "collector": frozenset(),
    "netmap": frozenset(),
    "grammar": _BASE,
    "policy": _BASE | {"grammar", "netmap"},
    "compiler": _LANGUAGE,
    "analysis": _LANGUAGE | {"compiler"},
    "enforcer": _BASE | {"netmap"},
    # control and meshnode meet only on the wire, through protocol.
    "protocol": _BASE | {"netmap"},
    "control": _COMPILED | {"protocol"},
    "meshnode": _BASE | {"netmap", "protocol", "enforcer"},
    "fmt": _BASE | {"grammar"},  # a grammar-level tool: text in, text out, no policy model
    "lsp": _COMPILED | {"fmt"},
    "cli": frozenset({"*"}),
}


def stage_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imported_stages(tree: ast.AST, module_path: Path) -> list[tuple[int, str]]:
    """(line, stage) for every import of a policyc stage in `tree`."""
    found: list[tuple[int, str]] = []
    package_parts = module_path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = package_parts[: len(package_parts) - node.level + 1]
                names = [".".join((*base, *(node.module or "").split(".")))]
                if not node.module:
                    names = [".".join((*base, alias.name)) for alias in node.names]
            elif node.module:
                names = [node.module]
                if node.module == "policyc":
                    names = [f"policyc.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "policyc" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def violations(module_path: Path, text: str) -> list[str]:
    stage = stage_of(module_path)
    if stage not in ALLOWED:
        return [f"{module_path}: stage {stage!r} is not in tests/test_layout.py's ALLOWED table"]
    allowed = ALLOWED[stage]
    bad = []
    for line, target in imported_stages(ast.parse(text), module_path):
        if target == stage or "*" in allowed or target in allowed:
            continue
        bad.append(f"{module_path.relative_to(PACKAGE.parent)}:{line}: "
                   f"{stage} may not import {target}")
    return bad


def test_every_import_runs_down_the_pipeline() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += violations(path, path.read_text(encoding="utf-8"))
    assert problems == []


@pytest.mark.parametrize(("module", "source"), [
    ("enforcer/nft.py", "from policyc.policy.model import Policy"),
    ("enforcer/nft.py", "import policyc.compiler.compiler"),
    ("grammar/hujson.py", "def f():\n    from policyc.policy import load\n"),
    ("grammar/hujson.py", "from ..policy import model"),
    ("netmap.py", "from policyc import diagnostics"),
    ("policy/model.py", "from policyc.analysis.reference import ReferenceEvaluator"),
    ("meshnode/agent.py", "from policyc.control import server"),
    ("newstage/x.py", "import json"),
])
def test_a_forbidden_import_is_caught(module: str, source: str) -> None:
    assert violations(PACKAGE / module, source)


@pytest.mark.parametrize(("module", "source"), [
    ("compiler/resolve.py", "from policyc.policy.model import Policy"),
    ("compiler/resolve.py", "from .addrset import AddressSet"),
    ("analysis/lint.py", "from policyc.compiler import compile_policy"),
    ("cli/app.py", "from policyc.enforcer import enforce"),
])
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert violations(PACKAGE / module, source) == []


def test_every_stage_folder_says_what_it_takes_and_gives() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init} has no docstring"
        assert len(doc.strip().splitlines()) >= 2, f"{init}: say what it takes and gives"


def test_tests_mirror_the_package() -> None:
    tests = PACKAGE.parent / "tests"
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        if folder.name in {"cli"}:
            continue  # the CLI is tested from tests/ itself (test_cli*.py)
        assert (tests / folder.name).is_dir(), f"tests/{folder.name}/ is missing"
