"""Commands for editors: fmt (the formatter), schema (JSON Schema), lsp (language server)."""

from __future__ import annotations

import difflib
import json
import os
import sys
import tempfile
from pathlib import Path

import click

from policyc.cli.app import main
from policyc.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, emit_diagnostics, io_failure
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import SourceFile


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False,
                                                                   allow_dash=True))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file would change.")
@click.option("--diff", is_flag=True, help="Change nothing; print a unified diff of changes.")
def fmt(files: tuple[str, ...], check: bool, diff: bool) -> None:
    """Lay out HuJSON FILES canonically, keeping every comment (in place).

    `-` reads standard input and writes the result to standard output.
    Exit 0 when nothing (else) needed changing, 1 when --check/--diff found
    changes or a file is not valid HuJSON, 2 when a file cannot be read.
    """
    from policyc.fmt import format_source
    from policyc.grammar.hujson import read_source

    diags = Diagnostics()
    changed: list[str] = []
    for name in files:
        source = (SourceFile("<stdin>", sys.stdin.read().removeprefix("\ufeff"))
                  if name == "-" else read_source(name))
        if isinstance(source, Diagnostic):
            diags.extend([source])
            continue
        formatted = format_source(source, diags)
        if formatted is None:
            continue
        if formatted != source.text:
            changed.append(name)
        if diff:
            sys.stdout.write("".join(difflib.unified_diff(
                source.text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                f"{name}\t(original)", f"{name}\t(formatted)")))
        elif name == "-":
            if not check:
                sys.stdout.write(formatted)
        elif check:
            if formatted != source.text:
                click.echo(f"would reformat {name}", err=True)
        elif formatted != source.text:
            _replace(name, formatted, diags)
    emit_diagnostics(diags)
    if not check and not diff:
        written = [n for n in changed if n != "-"]
        if written:
            click.echo(f"{len(written)} file(s) reformatted", err=True)
    if diags.has_errors:
        sys.exit(EXIT_USAGE if io_failure(diags) else EXIT_FAIL)
    sys.exit(EXIT_FAIL if changed and (check or diff) else EXIT_OK)


def _replace(name: str, text: str, diags: Diagnostics) -> None:
    """Write `text` to `name` atomically, keeping the file's permissions."""
    from policyc.diagnostics.source import Span

    path = Path(name)
    try:
        mode = path.stat().st_mode
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".fmt")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            os.chmod(tmp, mode & 0o7777)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        diags.error("P006", Span(SourceFile(name, ""), 0, 0),
                    f"cannot write the file: {err.strerror or err}")


@main.command()
def schema() -> None:
    """Print a JSON Schema (2020-12) of the policy file, for editors."""
    from policyc.policy.schema import policy_schema

    click.echo(json.dumps(policy_schema(), indent=2))


@main.command()
@click.option("--stdio", is_flag=True, help="Accepted for clients that pass it; stdio is "
              "the only transport.")
def lsp(stdio: bool) -> None:
    """Run the language server on standard input/output (docs/editors.md)."""
    from policyc.lsp.server import serve

    serve()
