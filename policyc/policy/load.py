"""Entry points: text or file -> parse -> build -> validate.

The CLI, the control server and the language server call these, so every
front end reports the same diagnostics for the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from policyc.policy.build import build_policy
from policyc.policy.diagnostics import Diagnostic, Diagnostics
from policyc.policy.hujson import parse, read_source
from policyc.policy.inventory import load_inventory
from policyc.policy.model import Policy
from policyc.policy.nodes import Inventory
from policyc.policy.source import SourceFile
from policyc.policy.validate import validate_policy

T = TypeVar("T")


def load_policy_source(source: SourceFile, diags: Diagnostics) -> Policy:
    """Parse, build and validate one policy source; best effort."""
    policy = build_policy(parse(source, diags), source, diags)
    validate_policy(policy, diags)
    return policy


def load_policy_text(text: str, name: str = "<string>") -> tuple[Policy, Diagnostics]:
    diags = Diagnostics()
    return load_policy_source(SourceFile(name, text), diags), diags


def load_policy_file(path: str | Path) -> tuple[Policy | None, Diagnostics]:
    """The policy at `path`; None (with a P006) when the file cannot be read."""
    return _load_file(path, load_policy_source)


def load_inventory_text(text: str, name: str = "<string>") -> tuple[Inventory, Diagnostics]:
    diags = Diagnostics()
    return load_inventory(SourceFile(name, text), diags), diags


def load_inventory_file(path: str | Path) -> tuple[Inventory | None, Diagnostics]:
    """The inventory at `path`; None (with a P006) when the file cannot be read."""
    return _load_file(path, load_inventory)


def _load_file(path: str | Path, load: Callable[[SourceFile, Diagnostics], T],
               ) -> tuple[T | None, Diagnostics]:
    diags = Diagnostics()
    source = read_source(path)
    if isinstance(source, Diagnostic):
        diags.extend([source])
        return None, diags
    return load(source, diags), diags
