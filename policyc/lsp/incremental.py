"""Incremental analysis: an edit inside one rule or definition re-parses and
rebuilds only that item, not the whole file.

A policy's big sections are lists of independent items: the rules of
`acls`/`grants`/`ssh`/`nodeAttrs`/`tests`/`sshTests`, the definitions of
`groups`/`tagOwners`/`hosts`/`ipsets`. Typing almost always happens inside one
of them. `Engine.update` finds the one item the edit fell in (the common
prefix and suffix of the old and new text), parses that item's new text on
its own, builds it with the library's own builder, and reassembles the
`Policy` from the other items' previous results. Validation (which relates
items to each other), the inventory cross-check and lint then run on the whole
policy as `policyc check` runs them.

Nothing already built is copied to shift its spans. An item parsed on its own
has spans into its own small `SourceFile`; items from the last full parse keep
spans into that text. `_Places` maps any such (source, offset) to the offset
in the newest text, and the diagnostics, and only they, are moved there before
they are published. The tree and policy of an incremental result therefore
hold spans of several sources: they serve the diagnostics only, and requests
that navigate (hover, rename, ...) ask for a full analysis (`Engine.full`),
which the server also runs when typing pauses.

Lint (with an inventory) is whole-policy work that can cost most of a second
at 10k nodes; when the last lint cost more than LINT_BUDGET, an update shows
the last lint results (moved with the text, dropped for an edited item) and
the whole analysis at the next pause lints again.

Whenever the edit is not inside one item (a new rule pasted between two, a
section key renamed, a syntax error, a duplicate key whose note names a line),
`update` falls back to the full analysis, so the result is always exactly what
the full analysis gives; tests/lsp/test_lsp_incremental.py checks that on
random edits.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from policyc.analysis.check import check_loaded_policy
from policyc.analysis.testrunner import run_policy_tests
from policyc.compiler.crosscheck import check_inventory_against_policy
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.cst import JArray, JMember, JObject, JValue
from policyc.grammar.hujson import BOM, parse
from policyc.lsp.document import Analysis
from policyc.policy.build import SECTIONS, TOP_LEVEL_KEYS, build_policy
from policyc.policy.build_rules import build_acl, build_grant, build_ssh, build_ssh_test, build_test
from policyc.policy.jsonread import Reader
from policyc.policy.model import Policy
from policyc.policy.validate import validate_policy

# Array sections: key -> the builder of one item (SECTIONS holds list_of(it)).
ARRAY_ITEMS: dict[str, Callable[[Reader, JValue], Any]] = {
    "acls": build_acl, "grants": build_grant, "ssh": build_ssh, "tests": build_test,
    "sshTests": build_ssh_test,
}
# Object sections built member by member with SECTIONS' own builder. `postures`
# is not here: build.py checks defaultSrcPosture against it, so it stays whole.
OBJECT_MEMBERS = frozenset({"groups", "tagOwners", "hosts", "ipsets"})
# Conservative: the full parse counts nesting from the file's root (MAX_DEPTH).
_MAX_ITEM_BRACKETS = 150
# Lint (inventory-aware warnings) is whole-policy work: 0.6-1 s at 1k-10k nodes.
# When it costs more than this, an incremental update does not lint (see _check).
LINT_BUDGET = 0.03
# Diagnostics whose message names a line (P002's note, W203's "the rule at
# file:line:col"): computed from an item parsed on its own, it would be wrong.
_NAMES_A_LINE = frozenset({"P002", "W203"})


def _build_node_attr(r: Reader, value: JValue) -> Any:
    from policyc.policy.build import build_node_attr
    return build_node_attr(r, value)


ARRAY_ITEMS["nodeAttrs"] = _build_node_attr


@dataclass
class _Item:
    """One rule (array sections) or one definition (object sections)."""

    node: JValue | JMember  # spans into `source`
    source: SourceFile
    built: Any  # the built rule (None when it was rejected) or the member's dict
    diags: list[Diagnostic]

    @property
    def span(self) -> Span:
        return self.node.span


@dataclass
class _Section:
    key: str
    field_name: str
    container: JArray | JObject  # from the last full parse (its brackets' spans)
    items: list[_Item]

    def value(self) -> Any:
        if isinstance(self.container, JArray):
            return tuple(i.built for i in self.items if i.built is not None)
        merged: dict[str, Any] = {}
        for item in self.items:
            merged.update(item.built)
        return merged


@dataclass
class _Places:
    """Where offsets of older sources are in the newest text.

    The last full parse's text (`base`) is cut at every item boundary; an edit
    happens strictly inside one item, so everything from the next boundary on
    moves by the edit's length change, and nothing before it moves. An item
    parsed on its own (`pieces`) moves as a whole.
    """

    base: SourceFile
    base_offsets: list[int]  # sorted boundaries in `base`
    current: list[int]  # where each boundary is now
    pieces: dict[SourceFile, list[int]] = field(default_factory=dict)  # [origin, now]

    def locate(self, source: SourceFile, offset: int) -> int | None:
        if source is self.base:
            i = bisect.bisect_right(self.base_offsets, offset) - 1
            return self.current[i] + offset - self.base_offsets[i]
        piece = self.pieces.get(source)
        return None if piece is None else offset - piece[0] + piece[1]

    def shift(self, after: int, delta: int) -> None:
        """Move every boundary past `after` (an offset inside the edited item)."""
        current = self.current
        for i in range(bisect.bisect_right(current, after), len(current)):
            current[i] += delta
        for piece in self.pieces.values():
            if piece[1] > after:
                piece[1] += delta


@dataclass
class _State:
    """What the last analysis knew, to redo only what an edit changed."""

    text: str
    source: SourceFile  # of `text`
    places: _Places
    frame: Policy  # every section but the split ones, built from the last full parse
    frame_diags: list[Diagnostic]  # its parse and build diagnostics (spans in `base`)
    sections: dict[str, _Section]  # the split sections, in SECTIONS order
    policy: Policy
    inventory: Inventory | None  # as given (before the cross-check)
    tests: list[Diagnostic]  # the last policy-test results (spans anywhere in `places`)
    lint: list[Diagnostic] = field(default_factory=list)  # the last lint results (same)


class Engine:
    """The analyses of one open document, each reusing the last where it can."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: _State | None = None
        # The last test results of a text analysed without a state (not splittable).
        self.loose_tests: tuple[SourceFile, list[Diagnostic]] | None = None
        # CPU seconds the last lint took: above LINT_BUDGET, updates show the last
        # lint results (moved) and the whole analysis at the next pause lints again.
        self.lint_seconds: float | None = None
        self.incremental_runs = 0  # how many updates were incremental (tests, benchmark)
        self.full_runs = 0

    def update(self, text: str, version: int, inventory: Inventory | None) -> Analysis:
        """The analysis of `text`: incremental when the edit is inside one item.

        It shows the last policy-test results (moved with the text) rather
        than running the tests; `full(..., run_tests=True)` replaces them."""
        text = text.removeprefix(BOM)
        state = self.state
        if state is not None and state.inventory is inventory and (
                text == state.text or self._edit(state, text)):
            deferred = self.lint_seconds is not None and self.lint_seconds > LINT_BUDGET
            checked = _check(state.source, None, state.policy, _stage_diags(state), inventory,
                             version, run_tests=False, tests=state.tests,
                             move=lambda diags: _moved(state, diags),
                             kept_lint=state.lint if deferred else None)
            if not checked.names_a_line:
                self.incremental_runs += 1
                self._keep(state, checked)
                return checked.analysis
        return self.full(text, version, inventory, run_tests=False)

    def is_local(self, text: str) -> bool:
        """Whether `update(text)` would be incremental (cheap: no parsing)."""
        state = self.state
        if state is None:
            return False
        text = text.removeprefix(BOM)
        start, old_end, _ = _changed(state.text, text)
        return text == state.text or _find_item(state, start, old_end) is not None

    def full(self, text: str, version: int, inventory: Inventory | None, *,
             run_tests: bool) -> Analysis:
        """Parse, build and check the whole text, as `analyze` does; the new base for
        later edits. Without `run_tests`, the last test results are kept (moved)."""
        self.full_runs += 1
        text = text.removeprefix(BOM)
        source = SourceFile(self.name, text)
        kept = self._kept_tests(source)
        diags = Diagnostics()
        tree = parse(source, diags)
        split = _splittable(tree, diags)
        if split is None:
            self.state = None
            policy = build_policy(tree, source, diags)
            checked = _check(source, tree, policy, list(diags), inventory, version,
                             run_tests=run_tests, tests=kept, move=list)
            self.loose_tests = (source, checked.tests)
            self.lint_seconds = checked.lint_seconds or self.lint_seconds
            return checked.analysis
        root, sections = split
        skeleton = JObject(tuple(
            JMember(m.key, _emptied(m.value)) if m.key.value in sections else m
            for m in root.members), root.span)
        frame = build_policy(skeleton, source, diags)
        built = {key: _Section(key, SECTIONS[key][0], value, [
            _build_item(key, node, source) for node in _items(value)])
            for key, value in sections.items()}
        boundaries = sorted({0, *(b for s in built.values() for i in s.items
                                  for b in (i.span.start, i.span.end))})
        state = _State(text, source, _Places(source, boundaries, list(boundaries)),
                       frame, list(diags), built, frame, inventory, kept)
        state.policy = _assemble(state)
        checked = _check(source, tree, state.policy, _stage_diags(state), inventory, version,
                         run_tests=run_tests, tests=kept, move=list)
        self._keep(state, checked)
        self.state, self.loose_tests = state, None
        return checked.analysis

    def _keep(self, state: _State, checked: _Checked) -> None:
        state.tests, state.lint = checked.tests, checked.lint
        if checked.lint_seconds is not None:
            self.lint_seconds = checked.lint_seconds

    def _kept_tests(self, source: SourceFile) -> list[Diagnostic]:
        """The last policy-test results moved into `source` (a new whole text): those
        before the changed region stay, those after it move, those inside it go."""
        if self.state is not None:
            old, tests = self.state.source, _moved(self.state, self.state.tests)
        elif self.loose_tests is not None:
            old, tests = self.loose_tests
        else:
            return []
        start, old_end, new_end = _changed(old.text, source.text)
        out = []
        for diag in tests:
            span = diag.span
            if span.source is not old:
                out.append(diag)  # about another file
            elif span.end <= start:
                out.append(dataclasses.replace(diag, span=Span(source, span.start, span.end)))
            elif span.start >= old_end:
                delta = new_end - old_end
                out.append(dataclasses.replace(
                    diag, span=Span(source, span.start + delta, span.end + delta)))
        return out

    def _edit(self, state: _State, text: str) -> bool:
        """Apply the change from state.text to `text` in place; False (nothing
        changed) if it is not inside one item: the caller then analyses it whole."""
        start, old_end, new_end = _changed(state.text, text)
        found = _find_item(state, start, old_end)
        if found is None:
            return False
        section, index, item_start, item_end = found
        item = section.items[index]
        delta = new_end - old_end
        replacement = _parse_item(section, item, text[item_start:item_end + delta], self.name)
        if replacement is None:
            return False
        node, origin, piece_source = replacement
        places = state.places
        places.pieces.pop(item.source, None)
        places.shift(start, delta)
        places.pieces[piece_source] = [origin, item_start]
        section.items[index] = _build_item(section.key, node, piece_source)
        state.tests = [d for d in state.tests if not _inside(d.span, item)]
        state.lint = [d for d in state.lint if not _inside(d.span, item)]
        state.text = text
        state.source = SourceFile(self.name, text)
        state.policy = dataclasses.replace(state.policy, **{section.field_name: section.value()})
        return True


@dataclass
class _Checked:
    analysis: Analysis
    tests: list[Diagnostic]  # the policy-test results to keep
    lint: list[Diagnostic]  # the lint results to keep
    lint_seconds: float | None  # what linting cost, when it ran
    names_a_line: bool  # a diagnostic computed now names a line (_NAMES_A_LINE)


def _check(source: SourceFile, tree: JValue | None, policy: Policy, stage: list[Diagnostic],
           inventory: Inventory | None, version: int, *, run_tests: bool,
           tests: list[Diagnostic], move: Callable[[list[Diagnostic]], list[Diagnostic]],
           kept_lint: list[Diagnostic] | None = None) -> _Checked:
    """Validate, cross-check, lint and (run_tests) test as `analyze` does, then `move`
    the diagnostics into `source` (`list` when they are there already: a whole
    analysis, complete for navigation). The test results to keep are the new ones
    when the tests ran (as check runs them: only on a policy without errors), else
    `tests`. With `kept_lint`, lint does not run: those (last) results are shown
    instead where check would lint (no errors)."""
    diags = Diagnostics(list(stage))
    validate_policy(policy, diags)
    used = inventory
    if inventory is not None and not diags.has_errors:
        used = check_inventory_against_policy(policy, inventory, diags)
    had_errors = diags.has_errors
    lint, lint_seconds, shown_lint = kept_lint or [], None, []
    if kept_lint is None:
        before, started = len(diags.items), time.thread_time()
        check_loaded_policy(policy, used, diags, run_tests=False)
        lint = diags.items[before:]
        if used is not None and not had_errors:
            lint_seconds = time.thread_time() - started
    elif not had_errors:
        shown_lint = kept_lint
    ran = run_tests and not had_errors
    if ran:
        before = len(diags.items)
        run_policy_tests(policy, used, diags)
        tests = diags.items[before:]
        del diags.items[before:]
    shown = move(diags.items) + move(shown_lint) + move(tests)
    ordered = sorted(shown, key=lambda d: (d.span.file, d.span.start, d.code))
    names_a_line = any(d.code in _NAMES_A_LINE for d in diags.items)
    return _Checked(Analysis(version, source, tree, policy, tuple(ordered), used, ran,
                             complete=move is list), tests, lint, lint_seconds, names_a_line)


def _stage_diags(state: _State) -> list[Diagnostic]:
    """Parse and build diagnostics in the order build_policy reports them."""
    out = list(state.frame_diags)
    for section in state.sections.values():
        out.extend(itertools.chain.from_iterable(i.diags for i in section.items))
    return out


def _moved(state: _State, diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """`diags` with spans into state.source (the newest text). Spans into another
    file (the inventory) are kept; spans into an item replaced since are dropped."""
    out = []
    places, source = state.places, state.source
    for diag in diags:
        span = diag.span
        if span.source is source or span.source.name != source.name:
            out.append(diag)
            continue
        start = places.locate(span.source, span.start)
        end = places.locate(span.source, span.end)
        if start is not None and end is not None:
            out.append(dataclasses.replace(diag, span=Span(source, start, end)))
    return out


def _inside(span: Span, item: _Item) -> bool:
    return (span.source is item.source
            and item.span.start <= span.start and span.end <= item.span.end)


def _splittable(tree: JValue | None, diags: Diagnostics,
                ) -> tuple[JObject, dict[str, JArray | JObject]] | None:
    """The root and its sections to build item by item, or None when the file is
    better analysed whole (no object, a duplicate or unknown top-level key)."""
    if not isinstance(tree, JObject) or any(d.code == "P002" for d in diags):
        return None
    if any(m.key.value not in TOP_LEVEL_KEYS for m in tree.members):
        return None  # an unknown key may be read as a misspelt section (build.py)
    sections: dict[str, JArray | JObject] = {}
    for key in SECTIONS:
        value = tree.get(key)
        if (isinstance(value, JArray) and key in ARRAY_ITEMS) or \
                (isinstance(value, JObject) and key in OBJECT_MEMBERS):
            sections[key] = value
    return tree, sections


def _emptied(value: JValue) -> JValue:
    return JArray((), value.span) if isinstance(value, JArray) else JObject((), value.span)


def _items(value: JArray | JObject) -> tuple[JValue | JMember, ...]:
    return value.items if isinstance(value, JArray) else value.members


def _build_item(key: str, node: JValue | JMember, source: SourceFile) -> _Item:
    reader = Reader(Diagnostics(), fold_case=True)
    if isinstance(node, JMember):
        built = SECTIONS[key][1](reader, JObject((node,), node.span))
    else:
        built = ARRAY_ITEMS[key](reader, node)
    return _Item(node, source, built, list(reader.diags))


def _assemble(state: _State) -> Policy:
    """The frame's policy with the split sections filled in from their items."""
    return dataclasses.replace(state.frame, **{
        s.field_name: s.value() for s in state.sections.values()})


def _changed(old: str, new: str) -> tuple[int, int, int]:
    """(start, old_end, new_end): the one region where `old` and `new` differ."""
    limit = min(len(old), len(new))
    start = _common_prefix(old, new, limit)
    suffix = _common_suffix(old, new, limit - start)
    return start, len(old) - suffix, len(new) - suffix


def _common_prefix(a: str, b: str, limit: int) -> int:
    step, at = 4096, 0  # compare in blocks (C speed), then character by character
    while at + step <= limit and a[at:at + step] == b[at:at + step]:
        at += step
    while at < limit and a[at] == b[at]:
        at += 1
    return at


def _common_suffix(a: str, b: str, limit: int) -> int:
    step, n, la, lb = 4096, 0, len(a), len(b)
    while n + step <= limit and a[la - n - step:la - n] == b[lb - n - step:lb - n]:
        n += step
    while n < limit and a[la - n - 1] == b[lb - n - 1]:
        n += 1
    return n


def _find_item(state: _State, start: int, old_end: int,
               ) -> tuple[_Section, int, int, int] | None:
    """The section and index of the item that strictly contains [start, old_end),
    with where that item starts and ends in state.text."""
    places = state.places
    for section in state.sections.values():
        items = section.items
        if not items:
            continue
        first = places.locate(items[0].source, items[0].span.start)
        last = places.locate(items[-1].source, items[-1].span.end)
        if first is None or last is None or not first < start or not old_end < last:
            continue
        index = bisect.bisect_right(
            items, start, key=lambda i: places.locate(i.source, i.span.start) or 0) - 1
        item = items[index]
        item_start = places.locate(item.source, item.span.start)
        item_end = places.locate(item.source, item.span.end)
        if item_start is not None and item_end is not None \
                and item_start < start and old_end < item_end:
            return section, index, item_start, item_end
        return None
    return None


def _parse_item(section: _Section, item: _Item, text: str, name: str,
                ) -> tuple[JValue | JMember, int, SourceFile] | None:
    """`text` (the item's new text) parsed on its own: (node, the offset in its
    source where the item starts, that source); None if it is not one clean item."""
    if text.count("{") + text.count("[") > _MAX_ITEM_BRACKETS:
        return None
    diags = Diagnostics()
    if isinstance(item.node, JMember):
        source = SourceFile(name, "{" + text + "}")
        wrapped = parse(source, diags)
        if diags.items or not isinstance(wrapped, JObject) or len(wrapped.members) != 1:
            return None
        member = wrapped.members[0]
        key = member.key.value
        if key != item.node.key.value and any(
                isinstance(other.node, JMember) and other.node.key.value == key
                for other in section.items):
            return None  # now a duplicate key (P002)
        return member, 1, source
    source = SourceFile(name, text)
    value = parse(source, diags)
    if diags.items or not isinstance(value, JObject | JArray):
        return None
    if not isinstance(item.node, JObject | JArray):
        return None
    return value, 0, source
