"""One analysed version of an open policy: the library's own results, for the editor.

`analyze` runs exactly what `policyc check` runs (`load_policy_tree`, then
`check_loaded_policy`), so the diagnostics are check's, code for code and
span for span; `to_lsp_diagnostics` only changes their coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from lsprotocol import types

from policyc.analysis.check import check_loaded_policy
from policyc.compiler.crosscheck import check_inventory_against_policy
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics, Severity
from policyc.diagnostics.source import SourceFile
from policyc.grammar.cst import JValue
from policyc.lsp.positions import lsp_range
from policyc.lsp.symbols import SymbolIndex, build_index
from policyc.policy.load import load_policy_tree
from policyc.policy.model import Policy

_SEVERITY = {Severity.ERROR: types.DiagnosticSeverity.Error,
             Severity.WARNING: types.DiagnosticSeverity.Warning,
             Severity.NOTE: types.DiagnosticSeverity.Information}


@dataclass(frozen=True)
class Analysis:
    version: int  # the server's revision of the document it analysed
    source: SourceFile
    tree: JValue | None
    policy: Policy
    diagnostics: tuple[Diagnostic, ...]
    inventory: Inventory | None
    tests_ran: bool
    internal_error: str | None = None  # set when the library raised (a bug)

    @cached_property
    def index(self) -> SymbolIndex:
        """Built after the diagnostics are out (the server warms it on its worker), so
        navigation never delays them."""
        return build_index(self.tree)


def analyze(name: str, text: str, version: int, inventory: Inventory | None, *,
            run_tests: bool) -> Analysis:
    source = SourceFile(name, text.removeprefix("\ufeff"))
    diags = Diagnostics()
    tree, policy = load_policy_tree(source, diags)
    if inventory is not None and not diags.has_errors:
        # As `policyc check` loads it: the inventory as this policy allows it
        # (tags tagOwners lacks dropped), and the cross-check's errors about this
        # document (E109). Its I407s are the inventory file's: to_lsp_diagnostics
        # shows only this document's.
        inventory = check_inventory_against_policy(policy, inventory, diags)
    check_loaded_policy(policy, inventory, diags, run_tests=run_tests)
    return Analysis(version, source, tree, policy, tuple(diags.sorted()), inventory, run_tests)


def to_lsp_diagnostics(analysis: Analysis) -> list[types.Diagnostic]:
    out = []
    for diag in analysis.diagnostics:
        if diag.span.source is not analysis.source:
            continue  # about another file (the inventory): reported once, elsewhere
        data = {"suggestion": diag.suggestion} if diag.suggestion is not None else None
        out.append(types.Diagnostic(
            range=lsp_range(diag.span), message=diag.message, severity=_SEVERITY[diag.severity],
            code=diag.code, source="policyc", data=data,
            related_information=None,
        ))
    return out
