"""Real policy files from public repositories (issue 8: what Tailscale accepts,
policyc accepts).

`realworld/` holds files their owners keep applied to Tailscale (GitOps,
Terraform, the admin console): each must `check` with no error, compile
against a synthetic inventory, and survive `policyc fmt` (idempotent, same
netmaps). `realworld-invalid/` holds files Tailscale would reject as
committed; each names the error code it must get in an `// expect-error:`
header line, with the reason on the `// why:` line.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import replace
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from policyc.analysis.check import check_loaded_policy
from policyc.analysis.offline import synthetic_inventory
from policyc.compiler.compiler import compile_policy
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.fmt.format import format_text
from policyc.netmap import NodeNetmap
from policyc.policy.load import load_policy_text
from policyc.policy.model import Policy

HERE = Path(__file__).parent
# A large file is kept gzipped (`NAME.hujson.gz`); it is read as its text.
VALID = sorted((HERE / "realworld").glob("*.hujson*"))
INVALID = sorted((HERE / "realworld-invalid").glob("*.hujson*"))
SOURCE_LINE = re.compile(r"^// source: https://github\.com/[^/]+/[^/]+/blob/[0-9a-f]{40}/\S+$")
EXPECT_LINE = re.compile(r"^// expect-error: ([A-Z]\d{3})$", re.MULTILINE)


def _read(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")


def _errors(diags: Diagnostics) -> list[str]:
    return [str(d) for d in diags.errors]


def _load_valid(path: Path) -> tuple[str, Policy]:
    text = _read(path)
    policy, diags = load_policy_text(text, path.name)
    assert not diags.has_errors, _errors(diags)
    return text, policy


# Two untagged devices besides the synthetic ones (one node per user and tag the
# policy mentions), so default allow-all policies compile to something too; one
# is an exit node and a subnet router, so route-aware rules have a target.
EXTRA_NODES = (
    Node("corpus-router", "corpus-a@example.com", (),
         (ip_address("100.127.250.1"), ip_address("fd7a:115c:a1e0::fa01")),
         routes=(ip_network("192.168.250.0/24"),), exit_node=True),
    Node("corpus-laptop", "corpus-b@example.com", (),
         (ip_address("100.127.250.2"), ip_address("fd7a:115c:a1e0::fa02"))),
)


def _inventory(policy: Policy) -> Inventory:
    return Inventory.of((*synthetic_inventory(policy).nodes, *EXTRA_NODES))


def _netmaps(policy: Policy) -> dict[str, NodeNetmap]:
    """Every node's netmap, less the policy version (a digest of the text, which
    fmt changes on purpose)."""
    compiled = compile_policy(policy, _inventory(policy))
    return {name: replace(netmap, policy_version="")
            for name, netmap in compiled.netmaps.items()}


def test_corpus_is_large_and_every_file_names_its_source() -> None:
    repos = {p.name.split("__")[0] + "/" + p.name.split("__")[1] for p in VALID + INVALID}
    # A floor just under today's size: a file that goes missing fails here.
    assert len(VALID) >= 260 and len(INVALID) >= 68 and len(repos) >= 275, (
        len(VALID), len(INVALID), len(repos))
    for path in VALID + INVALID:
        first = _read(path).splitlines()[0]
        assert SOURCE_LINE.match(first), f"{path.name}: {first!r}"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_real_policy_checks_compiles_and_formats(path: Path) -> None:
    text, policy = _load_valid(path)
    diags = Diagnostics()
    check_loaded_policy(policy, None, diags)
    assert not diags.has_errors, _errors(diags)
    netmaps = _netmaps(policy)
    assert set(netmaps) >= {n.name for n in EXTRA_NODES}

    formatted, fmt_diags = format_text(text, path.name)
    assert formatted is not None and not fmt_diags.has_errors, _errors(fmt_diags)
    again, _ = format_text(formatted, path.name)
    assert again == formatted, "fmt is not idempotent"
    reloaded, reload_diags = load_policy_text(formatted, path.name)
    assert not reload_diags.has_errors, _errors(reload_diags)
    assert _netmaps(reloaded) == netmaps, "fmt changed what the policy compiles to"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_real_policy_gets_its_documented_code(path: Path) -> None:
    text = _read(path)
    expected = EXPECT_LINE.search(text)
    assert expected is not None, "an invalid file documents its expected error code"
    assert "\n// why: " in text, "an invalid file says why Tailscale would reject it"
    policy, diags = load_policy_text(text, path.name)
    check_loaded_policy(policy, None, diags)
    codes = {d.code for d in diags.errors}
    assert expected.group(1) in codes, _errors(diags)
