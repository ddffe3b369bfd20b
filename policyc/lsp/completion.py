"""Completion: field names per section, defined names, autogroups, protocols.

The text being typed is usually not valid HuJSON, so the cursor's place is
read with a forgiving scan of the text before it (brackets, keys, strings)
instead of the parser; the names offered come from the last analysis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsprotocol import types

from policyc.lsp.navigation import AUTOGROUP_MEANINGS
from policyc.lsp.symbols import GROUP, HOST, IPSET, POSTURE, TAG, SymbolIndex
from policyc.policy import build, build_rules
from policyc.policy.aliases import PROTOCOLS

_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|//[^\n]*|/\*(?s:.*?)(?:\*/|$)|[{}\[\]:,]')

# The object reached by a path of keys ("[]" for an array item) -> its fields.
FIELDS: dict[tuple[str, ...], frozenset[str]] = {
    (): build.TOP_LEVEL_KEYS,
    ("acls", "[]"): build_rules.ACL_FIELDS,
    ("grants", "[]"): build_rules.GRANT_FIELDS,
    ("ssh", "[]"): build_rules.SSH_FIELDS,
    ("tests", "[]"): build_rules.TEST_FIELDS,
    ("sshTests", "[]"): build_rules.SSH_TEST_FIELDS,
    ("nodeAttrs", "[]"): build.NODE_ATTR_FIELDS,
    ("autoApprovers",): frozenset({"routes", "exitNode"}),
}
_ALIAS_FIELDS = frozenset({"src", "dst", "users", "ports", "via", "target", "accept", "deny",
                           "exitNode"})
_LOCAL_USER_PATHS = {("ssh", "[]", "users"), ("sshTests", "[]", "accept"),
                     ("sshTests", "[]", "check"), ("sshTests", "[]", "deny")}


@dataclass(frozen=True)
class Place:
    path: tuple[str, ...]  # keys and "[]" from the document down to the cursor
    at_key: bool  # the cursor is where an object key goes


def place_at(text: str, offset: int) -> Place:
    """Where `offset` is: the path of keys to it and whether a key goes there."""
    stack: list[list[str]] = []  # per open container: [kind, current key]
    expecting_key = False
    for match in _SCAN.finditer(text, 0, offset):
        token = match.group()
        if token[0] in "/":
            continue
        if token in ("{", "["):
            stack.append([token, ""])
            expecting_key = token == "{"
        elif token in ("}", "]"):
            if stack:
                stack.pop()
            expecting_key = False
        elif token == ",":
            expecting_key = bool(stack) and stack[-1][0] == "{"
        elif token == ":":
            expecting_key = False
        elif expecting_key and stack and match.end() < offset:
            stack[-1][1] = token.strip('"')  # a complete key before the cursor
    return Place(_path(stack, expecting_key), expecting_key)


def _path(stack: list[list[str]], at_key: bool) -> tuple[str, ...]:
    """Keys of the open objects and "[]" for open arrays, from the document down;
    an object where a key is being typed contributes nothing yet."""
    steps: list[str] = []
    for depth, (kind, key) in enumerate(stack):
        if kind == "[":
            steps.append("[]")
        elif not (depth == len(stack) - 1 and at_key):
            steps.append(key)
    return tuple(steps)


def completions(text: str, offset: int, index: SymbolIndex) -> list[types.CompletionItem]:
    place = place_at(text, offset)
    if place.at_key:
        fields = FIELDS.get(place.path, frozenset())
        return [types.CompletionItem(label=name, kind=types.CompletionItemKind.Field,
                                     detail="field") for name in sorted(fields)]
    path = place.path
    last = path[-1] if path else ""
    if last == "[]" and len(path) >= 2:
        last = path[-2]
    if last == "proto" or (len(path) >= 1 and path[-1] == "proto"):
        return [types.CompletionItem(label=name, kind=types.CompletionItemKind.EnumMember,
                                     detail=f"IP protocol {number}")
                for name, number in sorted(PROTOCOLS.items())]
    if last == "action":
        return [types.CompletionItem(label=a, kind=types.CompletionItemKind.EnumMember)
                for a in ("accept", "check")]
    if last in ("srcPosture", "defaultSrcPosture"):
        return _names(index, (POSTURE,))
    if tuple(p for p in path if p != "[]") in {tuple(x for x in lp if x != "[]")
                                               for lp in _LOCAL_USER_PATHS}:
        return [types.CompletionItem(label="autogroup:nonroot",
                                     kind=types.CompletionItemKind.Constant)]
    if last in _ALIAS_FIELDS or (path and path[0] in ("tagOwners", "ipsets")):
        items = _names(index, (GROUP, TAG, HOST, IPSET))
        items += [types.CompletionItem(label=name, kind=types.CompletionItemKind.Constant,
                                       detail=meaning)
                  for name, meaning in sorted(AUTOGROUP_MEANINGS.items())]
        return items
    return []


def _names(index: SymbolIndex, kinds: tuple[str, ...]) -> list[types.CompletionItem]:
    return [types.CompletionItem(label=name, kind=types.CompletionItemKind.Reference,
                                 detail=kind)
            for kind in kinds for name in index.names(kind)]
