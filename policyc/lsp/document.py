"""One analysed version of an open policy: the library's own results, for the editor.

`analyze` runs exactly what `policyc check` runs (`load_policy_tree`, then
`check_loaded_policy`), so the diagnostics are check's, code for code and
span for span; `to_lsp_diagnostics` only changes their coordinates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from lsprotocol import types

from policyc.analysis.check import check_loaded_policy
from policyc.compiler.crosscheck import check_inventory_against_policy
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics, Severity
from policyc.diagnostics.source import SourceFile
from policyc.grammar.cst import JValue
from policyc.lsp.positions import lsp_position, lsp_range
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
    # False for an incremental result (incremental.py): its tree and policy mix spans
    # of older texts and serve the diagnostics only; navigation needs a complete one.
    complete: bool = True

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


def to_lsp_diagnostics(analysis: Analysis, uri: str = "", *, related: bool = True,
                       ) -> list[types.Diagnostic]:
    """`analysis`'s diagnostics about its own document, in LSP coordinates.

    A diagnostic's notes (check prints them as `= note: ...`) become
    `relatedInformation` when the client supports it (`related`), each at the
    place it talks about when that is known (a duplicate key's first
    definition) and at the diagnostic itself otherwise. A client without
    that capability gets them as extra lines of the message instead, so they
    are never lost.
    """
    out = []
    for diag in analysis.diagnostics:
        if diag.span.source is not analysis.source:
            continue  # about another file (the inventory): reported once, elsewhere
        data = {"suggestion": diag.suggestion} if diag.suggestion is not None else None
        where = lsp_range(diag.span)
        message = diag.message
        infos = None
        if diag.notes and related:
            infos = [types.DiagnosticRelatedInformation(
                location=types.Location(uri=uri, range=_note_range(diag.span.source, note)
                                        or where),
                message=note) for note in diag.notes]
        elif diag.notes:
            message = "\n".join((message, *(f"note: {note}" for note in diag.notes)))
        out.append(types.Diagnostic(
            range=where, message=message, severity=_SEVERITY[diag.severity],
            code=diag.code, source="policyc", data=data, related_information=infos,
        ))
    return out


# hujson.py's P002 note names the first definition by line and column (1-based,
# in characters); that is a place in this document, so the editor can link it.
_FIRST_DEFINED = re.compile(r"first defined at line (\d+), column (\d+)")


def _note_range(source: SourceFile, note: str) -> types.Range | None:
    found = _FIRST_DEFINED.match(note)
    if found is None:
        return None
    line, column = int(found.group(1)), int(found.group(2))
    if line > len(source.line_starts):
        return None
    start = source.line_starts[line - 1] + column - 1
    end = start
    if source.text[start:start + 1] == '"':  # the key: to its closing quote
        closing = source.text.find('"', start + 1)
        end = closing + 1 if closing != -1 else start
    return types.Range(start=lsp_position(source, start), end=lsp_position(source, end))
