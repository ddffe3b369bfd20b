"""Code actions (quick fixes) and the document outline."""

from __future__ import annotations

import json
import re

from lsprotocol import types

from policyc.diagnostics.diagnostics import Diagnostic
from policyc.diagnostics.source import Span
from policyc.grammar.cst import JArray, JObject, JString, JValue
from policyc.lsp.document import Analysis
from policyc.lsp.positions import lsp_range

_QUOTED = re.compile(r'"([^"]+)"')


def quick_fixes(analysis: Analysis, uri: str, start: int, end: int) -> list[types.CodeAction]:
    """Fixes for the diagnostics that touch [start, end]."""
    out: list[types.CodeAction] = []
    for diag in analysis.diagnostics:
        span = diag.span
        if span.source is not analysis.source or span.end < start or span.start > end:
            continue
        fix = _did_you_mean(diag)
        if fix is not None:
            title, edit = fix
            out.append(_action(title, uri, [edit], diag, preferred=True))
        if diag.code == "E105":
            tag_fix = _add_tag_owner(analysis, diag)
            if tag_fix is not None:
                out.append(_action(tag_fix[0], uri, [tag_fix[1]], diag, preferred=False))
    return out


def _action(title: str, uri: str, edits: list[types.TextEdit], diag: Diagnostic, *,
            preferred: bool) -> types.CodeAction:
    return types.CodeAction(
        title=title, kind=types.CodeActionKind.QuickFix, is_preferred=preferred,
        diagnostics=[types.Diagnostic(range=lsp_range(diag.span), message=diag.message,
                                      code=diag.code, source="policyc")],
        edit=types.WorkspaceEdit(changes={uri: edits}))


def _did_you_mean(diag: Diagnostic) -> tuple[str, types.TextEdit] | None:
    """The suggestion `check` prints as "did you mean ...?", as an edit."""
    if diag.suggestion is None:
        return None
    text = diag.span.text
    if diag.suggestion.startswith('"') or not text.startswith('"'):
        # A whole-token fix (P001: `True` -> `true`, `'x'` -> `"x"`).
        return (f"Replace with {diag.suggestion}",
                types.TextEdit(range=lsp_range(diag.span), new_text=diag.suggestion))
    # The span is a string; the misspelt name is the quoted word of the message
    # that the string holds (`tag "tag:prd" is not defined` in `"tag:prd:22"`).
    for word in _QUOTED.findall(diag.message):
        at = text.find(word)
        if at > 0 and json.dumps(word)[1:-1] == word:
            start = diag.span.start + at
            span = Span(diag.span.source, start, start + len(word))
            return (f"Change to {json.dumps(diag.suggestion)}",
                    types.TextEdit(range=lsp_range(span), new_text=diag.suggestion))
    return None


def _add_tag_owner(analysis: Analysis, diag: Diagnostic) -> tuple[str, types.TextEdit] | None:
    """E105 (tag not in tagOwners): add `"tag:x": []` to tagOwners."""
    words = [w for w in _QUOTED.findall(diag.message) if w.startswith("tag:")]
    tree = analysis.tree
    if not words or not isinstance(tree, JObject):
        return None
    tag = words[0]
    entry = f"{json.dumps(tag)}: []"
    source = analysis.source
    owners = tree.get("tagOwners")
    if isinstance(owners, JObject):
        at = owners.span.start + 1
        indent = _indent_of(analysis, owners.span.start) + "  "
        new_text = f"\n{indent}{entry},"
    else:
        at = tree.span.start + 1
        new_text = f'\n  "tagOwners": {{{entry}}},'
    position = lsp_range(Span(source, at, at)).start
    return (f"Add {tag} to tagOwners",
            types.TextEdit(range=types.Range(start=position, end=position), new_text=new_text))


def _indent_of(analysis: Analysis, offset: int) -> str:
    text = analysis.source.text
    line_start = text.rfind("\n", 0, offset) + 1
    line = text[line_start:offset]
    return line[: len(line) - len(line.lstrip(" \t"))]


# --- outline -------------------------------------------------------------------------


def outline(analysis: Analysis) -> list[types.DocumentSymbol]:
    tree = analysis.tree
    if not isinstance(tree, JObject):
        return []
    out = []
    for member in tree.members:
        children = _children(analysis, member.value)
        out.append(types.DocumentSymbol(
            name=member.key.value, kind=_section_kind(member.value),
            range=lsp_range(member.span), selection_range=lsp_range(member.key.span),
            children=children or None))
    return out


def _section_kind(value: JValue) -> types.SymbolKind:
    if isinstance(value, JArray):
        return types.SymbolKind.Array
    if isinstance(value, JObject):
        return types.SymbolKind.Namespace
    return types.SymbolKind.Property


def _children(analysis: Analysis, value: JValue) -> list[types.DocumentSymbol]:
    if isinstance(value, JObject):
        return [types.DocumentSymbol(name=m.key.value or '""', kind=types.SymbolKind.Constant,
                                     range=lsp_range(m.span),
                                     selection_range=lsp_range(m.key.span))
                for m in value.members]
    if isinstance(value, JArray):
        return [types.DocumentSymbol(name=_summary(item, n), kind=types.SymbolKind.Object,
                                     range=lsp_range(item.span),
                                     selection_range=lsp_range(item.span))
                for n, item in enumerate(value.items, 1)]
    return []


def _summary(item: JValue, number: int) -> str:
    """`#2 group:dev -> tag:prod:22`: a rule's sources and destinations."""
    if not isinstance(item, JObject):
        return f"#{number}"
    parts = []
    for key in ("src", "dst"):
        value = item.get(key)
        if isinstance(value, JArray):
            parts.append(", ".join(v.value for v in value.items if isinstance(v, JString)))
        elif isinstance(value, JString):
            parts.append(value.value)
    text = " -> ".join(parts)
    return f"#{number} {text}" if text else f"#{number}"
