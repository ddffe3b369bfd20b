"""Review commands: diff (access gained and lost), verify (assertions), graph (access map)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from policyc.cli.app import main
from policyc.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    emit_diagnostics,
    emit_warnings,
    fail_io,
    io_failure,
    load_files,
)
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.model import Policy


def _load_for_review(paths: tuple[str, ...], nodes_path: str | None
                     ) -> tuple[list[Policy], Inventory | None]:
    """Load every policy and the inventory; any error ends the run with exit 2."""
    from policyc.compiler.inventory import load_inventory_file
    from policyc.policy.load import load_policy_file

    diags = Diagnostics()
    policies: list[Policy] = []
    for path in paths:
        policy, found = load_policy_file(path)
        diags.extend(found)
        if policy is not None:
            policies.append(policy)
    inventory = None
    if nodes_path is not None:
        inventory, found = load_inventory_file(nodes_path)
        diags.extend(found)
    if diags.has_errors or len(policies) != len(paths):
        emit_diagnostics(diags)
        sys.exit(EXIT_USAGE)
    if diags.items:
        emit_warnings(diags)  # warnings only
    return policies, inventory


@main.command()
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", type=click.Path(dir_okay=False),
              help="Inventory of nodes; without it, the synthetic one `check` uses.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]),
              default="text", show_default=True)
def diff(old: str, new: str, nodes_path: str | None, fmt: str) -> None:
    """Access NEW gains and loses compared with OLD, grouped by who and where.

    Exit 0 when both allow exactly the same packets (even if the text
    changed), 1 when access changed, 2 when a file has errors.
    """
    from policyc.analysis.diff import access_diff, render_json, render_markdown, render_text

    (old_policy, new_policy), inventory = _load_for_review((old, new), nodes_path)
    result = access_diff(old_policy, new_policy, inventory)
    render = {"markdown": render_markdown, "json": render_json}.get(fmt, render_text)
    click.echo(render(result).rstrip("\n"))
    sys.exit(EXIT_FAIL if result.changed else EXIT_OK)


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--assert", "assert_path", required=True, type=click.Path(dir_okay=False),
              help="Assertions file (HuJSON): deny / allow / isolated statements.")
@click.option("--nodes", "nodes_path", type=click.Path(dir_okay=False),
              help="Inventory of nodes; without it, the synthetic one `check` uses.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]),
              default="text", show_default=True)
def verify(policy: str, assert_path: str, nodes_path: str | None, fmt: str) -> None:
    """Prove universal assertions about POLICY over every packet, or show a counterexample.

    Exit codes as `check`: 0 all proven, 1 an assertion fails or a file has
    errors, 2 a file cannot be read.
    """
    from policyc.analysis.assertions import load_assertions
    from policyc.analysis.verify import verify as run_verify
    from policyc.policy.load import load_file

    loaded = load_files(policy, nodes_path)
    diags = loaded.diags
    report = None
    if loaded.policy is not None and not diags.has_errors:
        model = loaded.policy
        assertions, found = load_file(
            assert_path, lambda source, d: load_assertions(source, model, d))
        diags.extend(found)
        if assertions is not None and not diags.has_errors:
            report = run_verify(model, loaded.inventory, assertions, diags)
    emit_diagnostics(diags, fmt, err=False)
    if fmt == "text":
        status = "ok" if not diags.has_errors else "FAILED"
        what = report.summary() if report is not None else "nothing proven"
        click.echo(f"{assert_path}: {status}: {what}")
    if diags.has_errors:
        sys.exit(EXIT_USAGE if io_failure(diags) else EXIT_FAIL)


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", type=click.Path(dir_okay=False),
              help="Inventory of nodes; without it, the synthetic one `check` uses.")
@click.option("-o", "--output", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write.")
def graph(policy: str, nodes_path: str | None, out_path: str) -> None:
    """Write a self-contained HTML page of who can reach what under POLICY."""
    from policyc.analysis.graph import access_map
    from policyc.analysis.graph_page import render_page

    (model,), inventory = _load_for_review((policy,), nodes_path)
    page = render_page(access_map(model, inventory).to_json())
    try:
        _write_whole(Path(out_path), page)
    except OSError as err:
        fail_io(out_path, f"cannot write the page: {err.strerror or err}")
    click.echo(f"wrote {out_path}", err=True)


def _write_whole(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a failed write
    leaves the previous page as it was, never half a page."""
    import os
    import tempfile

    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
