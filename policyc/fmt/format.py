"""Entry points of the formatter: check the syntax, then lay the text out again."""

from __future__ import annotations

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.fmt.layout import read_layout
from policyc.fmt.render import render
from policyc.grammar.hujson import is_blank, parse


def format_source(source: SourceFile, diags: Diagnostics) -> str | None:
    """The formatted text of `source`; None (with diagnostics) when it is not HuJSON.

    Syntax is judged by the grammar (`hujson.parse`), so the formatter and
    `policyc check` agree on what a broken file is and where it is broken. A
    duplicate key (P002) is reported but does not stop formatting: both
    members are kept as written, so the meaning (the first one wins) is too.
    """
    if not is_blank(source.text) and parse(source, diags) is None:
        return None
    return render(read_layout(source.text))


def format_text(text: str, name: str = "<string>") -> tuple[str | None, Diagnostics]:
    diags = Diagnostics()
    return format_source(SourceFile(name, text), diags), diags
