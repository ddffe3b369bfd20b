"""Text, Markdown and JSON for an `AccessDiff` (diff.py re-exports these).

Names in a policy are user input: the Markdown renderer escapes what would
break a table or a code span, so a tag called "x|y" cannot forge a row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from policyc.analysis.diff import AccessDiff, Change, NodeChanges

MAX_NODES_SHOWN = 50


def _counts(diff: AccessDiff) -> str:
    return f"{len(diff.gained)} gained, {len(diff.lost)} lost"


def _nodes(count: int) -> str:
    return f"{count} node{'' if count == 1 else 's'}"


def _inventory(diff: AccessDiff) -> str:
    if diff.synthetic:
        return f"synthetic inventory: one node per user and tag, {_nodes(diff.node_count)}"
    return f"inventory of {_nodes(diff.node_count)}"


def _rules_text(change: Change) -> str:
    from policyc.analysis.diff import rule_label

    return ", ".join(f"{rule_label(r)} at {r.location()}" for r in change.rules)


def render_text(diff: AccessDiff) -> str:
    """One line per change, `+` gained and `-` lost, then the per-node view."""
    if not diff.changed:
        return f"no access changes ({_inventory(diff)})"
    lines = [f"access changes: {_counts(diff)} ({_inventory(diff)})"]
    for mark, changes in (("+", diff.gained), ("-", diff.lost)):
        for change in changes:
            lines.append(f"{mark} {change.summary()}")
            if change.rules:
                lines.append(f"    by {_rules_text(change)}")
    if diff.per_node:
        lines.append("per node:")
        for node in diff.per_node[:MAX_NODES_SHOWN]:
            lines.extend(_node_lines(node))
        hidden = len(diff.per_node) - MAX_NODES_SHOWN
        if hidden > 0:
            lines.append(f"  ... and {hidden} more nodes (--format json lists them all)")
    return "\n".join(lines)


def _node_lines(node: NodeChanges) -> list[str]:
    out = [f"  {node.node}:"]
    for change in node.inbound:
        mark = "+" if change.kind == "gained" else "-"
        out.append(f"    {mark} from {change.who} {change.services}")
    for change in node.outbound:
        mark = "+" if change.kind == "gained" else "-"
        out.append(f"    {mark} to {change.where} {change.services}")
    return out


def _md(text: str) -> str:
    """Safe inside a Markdown table cell's code span."""
    clean = " ".join(text.split()).replace("`", "'").replace("|", "\\|")
    return f"`{clean}`"


def render_markdown(diff: AccessDiff) -> str:
    """A pull-request comment: a summary line, one table row per change."""
    title = "### policyc: access changes"
    if not diff.changed:
        return f"{title}\n\nNo access changes ({_inventory(diff)}).\n"
    lines = [title, "", f"**{_counts(diff)}** ({_inventory(diff)})", "",
             "| | who | where | ports | nodes | rules |", "|---|---|---|---|---|---|"]
    for label, changes in (("+ gained", diff.gained), ("- lost", diff.lost)):
        for c in changes:
            rules = "<br>".join(_md(f"{r.location()}") for r in c.rules)
            lines.append(f"| {label} | {_md(c.who.text)} | {_md(c.where.text)} | "
                         f"{_md(c.services.text())} | {len(c.where.nodes)} | {rules} |")
    if diff.per_node:
        lines += ["", f"<details><summary>{_nodes(len(diff.per_node))} affected</summary>", ""]
        for node in diff.per_node[:MAX_NODES_SHOWN]:
            parts = [f"{'+' if c.kind == 'gained' else '-'} from {_md(c.who.text)} "
                     f"{_md(c.services.text())}" for c in node.inbound]
            parts += [f"{'+' if c.kind == 'gained' else '-'} to {_md(c.where.text)} "
                      f"{_md(c.services.text())}" for c in node.outbound]
            lines.append(f"- {_md(node.node)}: " + "; ".join(parts))
        hidden = len(diff.per_node) - MAX_NODES_SHOWN
        if hidden > 0:
            lines.append(f"- ... and {hidden} more")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def render_json(diff: AccessDiff) -> str:
    """The JSON report, indented by two. orjson writes it: a diff of two unrelated
    policies on a big tailnet is hundreds of megabytes, which json's pure-Python
    indenting encoder takes minutes over. The same text as json.dumps(indent=2),
    except that non-ASCII characters are written as UTF-8, not escaped."""
    return orjson.dumps(diff.to_json(), option=orjson.OPT_INDENT_2).decode()
