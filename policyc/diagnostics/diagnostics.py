"""One diagnostic model for every stage; renderers live in `render.py`.

Stages append to a `Diagnostics` collector and keep going, so one run
reports every problem. Exceptions are reserved for internal bugs and for
`PolicyError`, which wraps a collector that holds at least one error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from policyc.diagnostics.codes import CODES
from policyc.diagnostics.source import Span


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span
    notes: tuple[str, ...] = ()
    suggestion: str | None = None

    @property
    def name(self) -> str:
        """The kebab-case name registered for `code`."""
        return CODES[self.code].name

    def __str__(self) -> str:
        where = f"{self.span.location()}: " if self.span.is_known else ""
        return f"{where}{self.severity.value}[{self.code}]: {self.message}"


@dataclass
class Diagnostics:
    """An append-only collector shared by the stages of one run."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, span: Span, message: str, *, notes: Iterable[str] = (),
              suggestion: str | None = None) -> None:
        self._add(code, Severity.ERROR, span, message, notes, suggestion)

    def warning(self, code: str, span: Span, message: str, *, notes: Iterable[str] = (),
                suggestion: str | None = None) -> None:
        self._add(code, Severity.WARNING, span, message, notes, suggestion)

    def _add(self, code: str, severity: Severity, span: Span, message: str,
             notes: Iterable[str], suggestion: str | None) -> None:
        if code not in CODES:
            raise KeyError(f"diagnostic code {code} is not registered in codes.py")
        self.items.append(Diagnostic(code, severity, message, span, tuple(notes), suggestion))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.WARNING]

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.span.file, d.span.start, d.code))

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class PolicyError(Exception):
    """Raised by convenience entry points when a stage reported errors."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics
        first = diagnostics.errors[0] if diagnostics.errors else None
        super().__init__(str(first) if first else "policy has errors")


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, if one is close enough."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
