"""Entry points: policy text or file -> parse -> build -> validate.

The CLI, the control server and the language server call these, so every
front end reports the same diagnostics for the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.cst import JValue
from policyc.grammar.hujson import parse, read_source
from policyc.policy.build import build_policy
from policyc.policy.model import Policy
from policyc.policy.validate import validate_policy

T = TypeVar("T")


def load_policy_source(source: SourceFile, diags: Diagnostics) -> Policy:
    """Parse, build and validate one policy source; best effort."""
    return load_policy_tree(source, diags)[1]


def load_policy_tree(source: SourceFile, diags: Diagnostics) -> tuple[JValue | None, Policy]:
    """`load_policy_source` that also gives the value tree (the language server's index)."""
    tree = parse(source, diags)
    policy = build_policy(tree, source, diags)
    validate_policy(policy, diags)
    return tree, policy


def load_policy_text(text: str, name: str = "<string>") -> tuple[Policy, Diagnostics]:
    diags = Diagnostics()
    return load_policy_source(SourceFile(name, text), diags), diags


def load_policy_file(path: str | Path) -> tuple[Policy | None, Diagnostics]:
    """The policy at `path`; None (with a P006) when the file cannot be read."""
    return load_file(path, load_policy_source)


def load_file(path: str | Path, load: Callable[[SourceFile, Diagnostics], T],
              ) -> tuple[T | None, Diagnostics]:
    """Read `path` and hand it to `load`; None (with a P006) when it cannot be read."""
    diags = Diagnostics()
    source = read_source(path)
    if isinstance(source, Diagnostic):
        diags.extend([source])
        return None, diags
    return load(source, diags), diags
