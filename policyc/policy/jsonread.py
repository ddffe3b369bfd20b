"""Typed, diagnosing access to the HuJSON value tree, shared by the builders.

Every type mismatch, unknown key and missing key becomes a diagnostic
(E101/E102/E103) and the caller gets None or an empty value, so builders read
like plain field access and never raise on user input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.grammar.cst import JArray, JBool, JObject, JString, JValue, type_name
from policyc.policy.aliases import parse_alias
from policyc.policy.model import Alias


@dataclass
class Reader:
    """Typed access to JSON values; every mismatch becomes a diagnostic."""

    diags: Diagnostics
    # The inventory reuses the reader with its own I4xx codes.
    unknown_code: str = "E101"
    wrong_type_code: str = "E102"
    missing_code: str = "E103"
    # Field names match case-insensitively, as Tailscale's Go decoder does
    # (headscale mirrors it: json.MatchCaseInsensitiveNames): `"ACLs"`, `"Groups"`
    # and `"Action"` are the spellings of Tailscale's early docs and are still
    # applied (jtcressy-home/tailnet-config). The policy sets it; the inventory
    # and assertion readers keep exact names.
    fold_case: bool = False

    def wrong_type(self, value: JValue, what: str, expected: str) -> None:
        self.diags.error(self.wrong_type_code, value.span,
                         f"{what}: expected {expected}, got {type_name(value)}")

    def obj(self, value: JValue, what: str) -> JObject | None:
        if isinstance(value, JObject):
            return value
        self.wrong_type(value, what, "an object")
        return None

    def arr(self, value: JValue, what: str, expected: str = "an array") -> JArray | None:
        if isinstance(value, JArray):
            return value
        self.wrong_type(value, what, expected)
        return None

    def string(self, value: JValue, what: str) -> JString | None:
        if isinstance(value, JString):
            return value
        self.wrong_type(value, what, "a string")
        return None

    def boolean(self, value: JValue, what: str) -> bool:
        if isinstance(value, JBool):
            return value.value
        self.wrong_type(value, what, "a boolean")
        return False

    def strings(self, value: JValue, what: str) -> tuple[JString, ...]:
        """An array of strings; non-string items are reported and dropped."""
        array = self.arr(value, what, "an array of strings")
        if array is None:
            return ()
        out: list[JString] = []
        for item in array.items:
            if isinstance(item, JString):
                out.append(item)
            else:
                self.wrong_type(item, what, "an array of strings")
        return tuple(out)

    def fields(self, obj: JObject, what: str, known: frozenset[str],
               required: tuple[str, ...] = ()) -> dict[str, JValue]:
        """The members of `obj` by key, reporting unknown (E101) and missing (E103) ones."""
        out: dict[str, JValue] = {}
        folded = _folded_names(known) if self.fold_case else {}
        for member in obj.members:
            key = member.key.value
            if key in known:
                out.setdefault(key, member.value)
                continue
            if key.casefold() in folded:
                self._folded_field(obj, out, member.key, folded[key.casefold()], member.value,
                                   what)
                continue
            guess = did_you_mean(key, known)
            self.diags.error(self.unknown_code, member.key.span,
                             f'{what}: unknown field "{key}"', suggestion=guess)
            if guess is not None and obj.get(guess) is None:
                # Read a misspelt field as its likely meaning so that one typo
                # (`tagowners`) does not cascade into errors everywhere it is used.
                out.setdefault(guess, member.value)
        for name in required:
            if name not in out:
                self.diags.error(self.missing_code, obj.span,
                                 f'{what}: missing required field "{name}"')
        return out

    def _folded_field(self, obj: JObject, out: dict[str, JValue], key: JString, name: str,
                      value: JValue, what: str) -> None:
        """`key` is field `name` in another case: accepted (W206), unless `name` is
        given too (in any case), which would leave the meaning to member order."""
        if name in out or obj.get(name) is not None:
            self.diags.error(self.unknown_code, key.span,
                             f'{what}: "{key.value}" repeats field "{name}" in another case')
            return
        self.diags.warning("W206", key.span, f'{what}: "{key.value}" is spelled "{name}" '
                           "today (Tailscale matches field names in any case)", suggestion=name)
        out[name] = value

    def aliases(self, value: JValue, what: str) -> tuple[Alias, ...]:
        out = []
        for item in self.strings(value, what):
            alias = parse_alias(item.value, item.span, self.diags, position=what)
            if alias is not None:
                out.append(alias)
        return tuple(out)

    def names(self, value: JValue | None, what: str) -> tuple[str, ...]:
        return tuple(s.value for s in self.strings(value, what)) if value is not None else ()


@functools.cache
def _folded_names(known: frozenset[str]) -> Mapping[str, str]:
    """casefold -> field name, once per set of known fields (each kind of object has
    one), not per object read: a 1 MB policy reads ~4,500 objects."""
    return {name.casefold(): name for name in known}


def has_items(value: JValue | None) -> bool:
    if isinstance(value, JArray):
        return bool(value.items)
    if isinstance(value, JObject):
        return bool(value.members)
    return False



def list_of(build: Callable[[Reader, JValue], Any]) -> Callable[[Reader, JValue], tuple[Any, ...]]:
    def build_list(r: Reader, value: JValue) -> tuple[Any, ...]:
        array = r.arr(value, "section", "an array")
        built = (build(r, item) for item in array.items) if array is not None else ()
        return tuple(item for item in built if item is not None)
    return build_list


