"""Hover, go to definition, find references and rename, from one `Analysis`."""

from __future__ import annotations

from lsprotocol import types

from policyc.compiler.resolve import Resolver
from policyc.diagnostics.source import Span
from policyc.grammar.cst import JArray, JObject
from policyc.lsp.document import Analysis
from policyc.lsp.positions import lsp_range
from policyc.lsp.symbols import (
    AUTOGROUP,
    GROUP,
    HOST,
    IPSET,
    POSTURE,
    PREFIXES,
    RENAMEABLE,
    TAG,
    Occurrence,
)
from policyc.policy.model import Alias, AutoGroupRef, Policy

AUTOGROUP_MEANINGS = {
    "autogroup:member": "every user-owned (untagged) device of a tailnet member",
    "autogroup:tagged": "every tagged device",
    "autogroup:self": "as a destination: each source user's own untagged devices",
    "autogroup:internet": "Internet access through an exit node (destinations only)",
    "autogroup:danger-all": "every address, inside the tailnet and out",
    "autogroup:nonroot": "SSH users: any local user except root",
    "autogroup:admin": "devices of users with the Admin role",
    "autogroup:owner": "devices of the tailnet Owner",
    "autogroup:it-admin": "devices of users with the IT admin role",
    "autogroup:network-admin": "devices of users with the Network admin role",
    "autogroup:billing-admin": "devices of users with the Billing admin role",
    "autogroup:auditor": "devices of users with the Auditor role",
    "autogroup:shared": "devices shared into the tailnet from another tailnet",
}
_LISTED = 20  # longer lists are cut in hovers


def _listing(items: list[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in items[:_LISTED])
    more = f" and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return (shown + more) or "none"


def hover(analysis: Analysis, offset: int) -> types.Hover | None:
    occurrence = analysis.index.at(offset)
    if occurrence is not None:
        text = _describe(analysis, occurrence)
        span = Span(analysis.source, occurrence.start, occurrence.end)
    else:
        found = _rule_at(analysis, offset)
        if found is None:
            return None
        text, span = found
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                       range=lsp_range(span))


def _describe(analysis: Analysis, occurrence: Occurrence) -> str:
    policy, name = analysis.policy, occurrence.name
    head = f"**{name}**"
    if occurrence.kind == AUTOGROUP:
        return f"{head}: {AUTOGROUP_MEANINGS.get(name, 'not a known autogroup')}"
    defined = _defined(policy, occurrence.kind, name)
    if defined is None:
        return f"{head}: not defined"
    return f"{head}: {defined}" + _nodes_with_tag(analysis, occurrence)


def _defined(policy: Policy, kind: str, name: str) -> str | None:
    if kind == GROUP and name in policy.groups:
        members = list(policy.groups[name].logins)
        return f"group of {len(members)} user(s): {_listing(members)}"
    if kind == TAG and name in policy.tag_owners:
        owners = [str(o) for o in policy.tag_owners[name].owners]
        return f"tag owned by {_listing(owners)}"
    if kind == HOST and name in policy.hosts:
        return f"host `{policy.hosts[name].network}`"
    if kind == IPSET and name in policy.ipsets:
        return f"ipset of {_listing([str(e) for e in policy.ipsets[name].entries])}"
    if kind == POSTURE and name in policy.postures:
        return f"posture: {_listing(list(policy.postures[name].conditions))}"
    return None


def _nodes_with_tag(analysis: Analysis, occurrence: Occurrence) -> str:
    if occurrence.kind != TAG:
        return ""
    if analysis.inventory is None:
        return "\n\n(no inventory: the nodes carrying it are unknown)"
    nodes = [n.name for n in analysis.inventory if occurrence.name in n.tags]
    return f"\n\ncarried by {len(nodes)} node(s): {_listing(nodes)}"


def _rule_at(analysis: Analysis, offset: int) -> tuple[str, Span] | None:
    """The ACL, grant or SSH rule whose object holds `offset`, described."""
    tree = analysis.tree
    if not isinstance(tree, JObject):
        return None
    policy = analysis.policy
    rules: dict[str, dict[int, tuple[tuple[Alias, ...], tuple[Alias, ...]]]] = {
        "acls": {r.span.start: (r.sources, tuple(d.alias for d in r.destinations))
                 for r in policy.acls or ()},
        "grants": {r.span.start: (r.sources, r.destinations) for r in policy.grants or ()},
        "ssh": {r.span.start: (r.sources, r.destinations) for r in policy.ssh},
    }
    for member in tree.members:
        section = rules.get(member.key.value)
        if section is None or not isinstance(member.value, JArray):
            continue
        for number, item in enumerate(member.value.items, 1):
            if item.span.start <= offset < item.span.end and item.span.start in section:
                sources, destinations = section[item.span.start]
                what = {"acls": "ACL rule", "grants": "grant", "ssh": "SSH rule"}[member.key.value]
                return (f"**{what} {number}**: {_reach(analysis, sources, destinations)}",
                        item.span)
    return None


def _reach(analysis: Analysis, sources: tuple[Alias, ...],
           destinations: tuple[Alias, ...]) -> str:
    if analysis.inventory is None:
        return "no inventory, so the nodes it reaches are unknown"
    resolver = Resolver(analysis.policy, analysis.inventory)
    src = {i for a in sources for i in resolver.alias_nodes(a)}
    dst = set()
    notes = []
    for alias in destinations:
        if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:self":
            dst.update(src)
            notes.append("autogroup:self counts each source's own devices")
        elif isinstance(alias, AutoGroupRef) and alias.name == "autogroup:internet":
            notes.append("plus the Internet through exit nodes")
        else:
            dst.update(resolver.alias_nodes(alias))
    total = len(analysis.inventory)
    text = f"reaches {len(dst)} of {total} node(s), from {len(src)} source node(s)"
    return text + "".join(f"; {n}" for n in notes)


# --- definition, references, rename -------------------------------------------------


def definition(analysis: Analysis, offset: int) -> types.Range | None:
    occurrence = analysis.index.at(offset)
    if occurrence is None:
        return None
    target = analysis.index.definitions.get((occurrence.kind, occurrence.name))
    if target is None:
        return None
    return _range(analysis, target)


def references(analysis: Analysis, offset: int, include_declaration: bool) -> list[types.Range]:
    occurrence = analysis.index.at(offset)
    if occurrence is None:
        return []
    return [_range(analysis, o) for o in analysis.index.references(occurrence.kind,
                                                                   occurrence.name)
            if include_declaration or not o.definition]


def rename_target(analysis: Analysis, offset: int) -> Occurrence | None:
    occurrence = analysis.index.at(offset)
    if occurrence is None or occurrence.kind not in RENAMEABLE:
        return None
    return occurrence


def rename_problem(occurrence: Occurrence, new_name: str) -> str | None:
    """Why `new_name` cannot replace the name, or None."""
    prefix = PREFIXES.get(occurrence.kind, "")
    if not new_name.startswith(prefix) or len(new_name) == len(prefix):
        return f"a {occurrence.kind} name must start with {prefix!r}"
    if any(c in new_name for c in '"\\ \t\n') or (occurrence.kind == HOST and
                                                  any(c in new_name for c in "@:")):
        return f"{new_name!r} is not a valid {occurrence.kind} name"
    return None


def rename_edits(analysis: Analysis, occurrence: Occurrence, new_name: str) -> list[types.TextEdit]:
    return [types.TextEdit(range=_range(analysis, o), new_text=new_name)
            for o in analysis.index.references(occurrence.kind, occurrence.name)]


def _range(analysis: Analysis, occurrence: Occurrence) -> types.Range:
    return lsp_range(Span(analysis.source, occurrence.start, occurrence.end))
