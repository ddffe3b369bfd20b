"""The command line imports a command's module only when that command runs.

`app.COMMAND_MODULES` must name every command the modules register (or a
command would vanish from `policyc`), and `policyc check` must not import
what only other commands use (httpx, the compiler's rule stages, the
enforcer, the language server, the review tools).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click

from policyc.cli.app import COMMAND_MODULES, main

ROOT = Path(__file__).resolve().parent.parent
# Modules `policyc check` (without --nodes) has no use for. orjson parses the
# policy (grammar/hujson_fast.py); lark only parses what has a diagnostic.
NOT_FOR_CHECK = ("httpx", "policyc.cli.control_client", "policyc.cli.apply_cmds",
                 "policyc.compiler.compiler", "policyc.compiler.grants", "policyc.enforcer",
                 "policyc.lsp", "policyc.analysis.diff", "policyc.analysis.verify",
                 "policyc.analysis.lint", "rich", "importlib.metadata", "lark", "regex",
                 "policyc.grammar.hujson_lark")


def test_command_modules_name_exactly_the_registered_commands() -> None:
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"policyc.cli.{module}")
    registered = {name: cmd.callback.__module__.rsplit(".", 1)[1]
                  for name, cmd in main.commands.items() if cmd.callback is not None}
    assert registered == COMMAND_MODULES
    assert main.list_commands(click.Context(main)) == sorted(COMMAND_MODULES)


def run_and_list_modules(*argv: str) -> tuple[str, list[str]]:
    """Run `policyc ARGV` in a fresh interpreter: its stdout and every module it imported."""
    probe = ("import sys, runpy\n"
             "sys.argv = ['policyc', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('policyc.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "import json\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True,
                          text=True, env=env, check=False)
    assert done.stderr.strip(), done.stdout
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def loaded_from(loaded: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in packages)]


def test_check_imports_only_what_it_uses(tmp_path: Path) -> None:
    policy = tmp_path / "policy.hujson"
    policy.write_text('{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],'
                      ' "tests": [{"src": "a@example.com", "accept": ["b@example.com:22"]}]}')
    out, loaded = run_and_list_modules("check", str(policy))
    assert "ok" in out, out
    assert "policyc.analysis.testrunner" in loaded  # it did run the tests
    assert not loaded_from(loaded, NOT_FOR_CHECK)


# The kernel side of the enforcer, which `policyc nft` (a dry run) never touches.
NOT_FOR_NFT = ("policyc.enforcer.nftapply", "policyc.enforcer.conntrack",
               "policyc.enforcer.wireguard", "policyc.enforcer.node", "policyc.enforcer.binding",
               "policyc.compiler.index", "lark")


def test_nft_imports_only_the_render() -> None:
    out, loaded = run_and_list_modules(
        "nft", str(ROOT / "samples" / "policy.hujson"), "--nodes",
        str(ROOT / "samples" / "nodes.json"), "--node", "alice-laptop")
    assert "table inet policyc" in out, out
    assert "policyc.enforcer.nftrender" in loaded
    assert not loaded_from(loaded, NOT_FOR_NFT)
