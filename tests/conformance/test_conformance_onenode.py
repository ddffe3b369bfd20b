"""Conformance through the one-node path (`nft`, `enforce`, `drift`, `compile --node`).

For every captured case (../shared/conformance/tailscale and tailscale-more) whose
policy we accept, each node's `node_netmap` must be exactly the netmap
`compile_policy` gives it (wire bytes, SSH policy, cap map), and its filter side
(`node_packet_filter`) the same addresses, routes and filter. The compile is what
the other conformance tests hold to Tailscale's captures, so the one-node path is
held to them too.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from conformance_data import (
    CASE_FILES,
    CASES_DIR,
    MISSING_REASON,
    MORE_CASE_FILES,
    case_inventory,
    load_case,
)

from policyc.compiler import compile_policy, node_netmap
from policyc.compiler.onenode import node_packet_filter
from policyc.policy.load import load_policy_text

pytestmark = [pytest.mark.conformance, pytest.mark.skipif(CASES_DIR is None,
                                                          reason=MISSING_REASON)]


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem)
                                  for p in (*CASE_FILES, *MORE_CASE_FILES)])
def test_each_node_alone_equals_the_whole_compile(path: Path) -> None:
    case = load_case(path)
    policy, diags = load_policy_text(case["policy"], case["test_id"] + ".hujson")
    if policy is None or diags.has_errors:
        pytest.skip("a rejected policy (test_conformance_errors.py's)")
    inventory = case_inventory(case)
    for name, expected in compile_policy(policy, inventory).netmaps.items():
        got = node_netmap(policy, inventory, name)
        assert orjson.dumps(got.to_json()) == orjson.dumps(expected.to_json()), name
        assert got.ssh_policy == expected.ssh_policy, name
        assert got.cap_map == expected.cap_map, name
        side = node_packet_filter(policy, inventory, name)  # what nft and drift render
        assert (side.addresses, side.routes) == (expected.addresses, expected.routes), name
        assert [r.to_json() for r in side.packet_filter] == [
            r.to_json() for r in expected.packet_filter], name


def test_every_case_ran() -> None:
    assert len(CASE_FILES) + len(MORE_CASE_FILES) >= 609 + 256
