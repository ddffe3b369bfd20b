"""Where each named thing is defined and used: the index behind navigation.

Names are groups, tags, hosts, ipsets, postures and autogroups. The index is
read off the value tree (so it knows the exact characters of each name inside
a string such as `"tag:web:443"`) with the same section and field layout the
policy builders use. Strings written with escapes are skipped: their source
characters are not their value, so they cannot be renamed in place.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from policyc.grammar.cst import JArray, JObject, JString, JValue

GROUP, TAG, HOST, IPSET, POSTURE, AUTOGROUP = (
    "group", "tag", "host", "ipset", "posture", "autogroup")
RENAMEABLE = frozenset({GROUP, TAG, HOST, IPSET, POSTURE})
PREFIXES = {GROUP: "group:", TAG: "tag:", IPSET: "ipset:", POSTURE: "posture:",
            AUTOGROUP: "autogroup:"}

# Definition sections: section key -> kind of its member keys.
DEFINING_SECTIONS = {"groups": GROUP, "tagOwners": TAG, "hosts": HOST, "ipsets": IPSET,
                     "postures": POSTURE}
# Rule sections: field -> how its strings read ("alias", "destination", "posture").
_RULE_FIELDS: dict[str, dict[str, str]] = {
    "acls": {"src": "alias", "users": "alias", "dst": "destination", "ports": "destination",
             "srcPosture": "posture"},
    "grants": {"src": "alias", "dst": "alias", "via": "alias", "srcPosture": "posture"},
    "ssh": {"src": "alias", "dst": "alias", "srcPosture": "posture"},
    "nodeAttrs": {"target": "alias"},
    "tests": {"src": "alias", "accept": "destination", "deny": "destination"},
    "sshTests": {"src": "alias", "dst": "alias"},
}


@dataclass(frozen=True, slots=True)
class Occurrence:
    kind: str
    name: str  # with its prefix, e.g. "tag:web"
    start: int  # character offsets of the name itself (inside the quotes)
    end: int
    definition: bool


@dataclass
class SymbolIndex:
    occurrences: list[Occurrence] = field(default_factory=list)
    definitions: dict[tuple[str, str], Occurrence] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.occurrences.sort(key=lambda o: o.start)
        self._starts = [o.start for o in self.occurrences]

    def at(self, offset: int) -> Occurrence | None:
        """The occurrence under the cursor (its end counts: the cursor after a name)."""
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0 and offset <= self.occurrences[index].end:
            return self.occurrences[index]
        return None

    def references(self, kind: str, name: str) -> list[Occurrence]:
        return [o for o in self.occurrences if o.kind == kind and o.name == name]

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.definitions if k == kind)


def build_index(tree: JValue | None) -> SymbolIndex:
    occurrences = list(_occurrences(tree)) if isinstance(tree, JObject) else []
    definitions: dict[tuple[str, str], Occurrence] = {}
    for occurrence in occurrences:
        if occurrence.definition:
            definitions.setdefault((occurrence.kind, occurrence.name), occurrence)
    return SymbolIndex(occurrences, definitions)


def _occurrences(top: JObject) -> Iterator[Occurrence]:
    for section in top.members:
        key, value = section.key.value, section.value
        if key in DEFINING_SECTIONS and isinstance(value, JObject):
            kind = DEFINING_SECTIONS[key]
            for member in value.members:
                name = member.key.value
                if kind == HOST or name.startswith(PREFIXES[kind]):
                    yield from _located(member.key, kind, name, definition=True)
                if kind in (TAG, IPSET):
                    yield from _strings(member.value, "ipset" if kind == IPSET else "alias")
        elif key in _RULE_FIELDS and isinstance(value, JArray):
            fields = _RULE_FIELDS[key]
            for rule in value.items:
                for member in rule.members if isinstance(rule, JObject) else ():
                    how = fields.get(member.key.value)
                    if how is not None:
                        yield from _strings(member.value, how)
        elif key == "autoApprovers" and isinstance(value, JObject):
            for member in value.members:
                if isinstance(member.value, JObject):  # routes: prefix -> approvers
                    for route in member.value.members:
                        yield from _strings(route.value, "alias")
                else:
                    yield from _strings(member.value, "alias")
        elif key == "defaultSrcPosture":
            yield from _strings(value, "posture")


def _strings(value: JValue, how: str) -> Iterator[Occurrence]:
    items = value.items if isinstance(value, JArray) else (value,)
    for item in items:
        if isinstance(item, JString):
            text = item.value.strip()
            if how == "ipset":  # entries may be `add X` / `remove X`
                verb, _, rest = text.partition(" ")
                text = rest.strip() if verb in ("add", "remove") else text
            name = _destination_alias(text) if how == "destination" else text
            kind = POSTURE if how == "posture" else _alias_kind(name)
            if kind is not None:
                yield from _located(item, kind, name, definition=False)


def _destination_alias(text: str) -> str:
    """`tag:web:80,443` -> `tag:web`; `[fd7a::1]:22` -> `fd7a::1`."""
    if text.startswith("[") and "]:" in text:
        return text[1:text.index("]:")]
    head, sep, _ = text.rpartition(":")
    return head if sep else text


def _alias_kind(name: str) -> str | None:
    for kind, prefix in PREFIXES.items():
        if name.startswith(prefix) and kind != POSTURE:
            return kind
    if not name or name == "*" or "@" in name or ":" in name or "/" in name or " " in name:
        return None
    try:
        ipaddress.ip_network(name, strict=False)
        return None
    except ValueError:
        return None if "-" in name and name[0].isdigit() else HOST


def _located(token: JString, kind: str, name: str, *, definition: bool) -> Iterator[Occurrence]:
    raw = token.span.text
    if raw[1:-1] != token.value:
        return  # written with escapes: no source characters for the name
    at = token.value.find(name)
    if at >= 0:
        start = token.span.start + 1 + at
        yield Occurrence(kind, name, start, start + len(name), definition)
