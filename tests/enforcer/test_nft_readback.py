"""Read-back normalisation (nftapply): what nft lists compares equal to what
was rendered, whatever the nft version's spelling, and hand changes never
make the comparison raise. No kernel needed: listings are built from the
rendered commands the way `nft -j list table` prints them."""

from __future__ import annotations

import copy
from typing import Any

from policyc.enforcer.nft import render_ruleset
from policyc.enforcer.nftapply import compare_states, expected_state, observed_state
from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, PortRange

NODE = NodeNetmap("n", ("100.64.0.10", "fd7a:115c:a1e0::a"), (), (
    FilterRule(("100.64.0.20", "fd7a:115c:a1e0::14"),
               (NetPortRange("100.64.0.10", PortRange(22, 22)),
                NetPortRange("fd7a:115c:a1e0::a", PortRange(22, 22))), (6,)),
    FilterRule(tuple(f"100.64.1.{2 * i}" for i in range(20)),
               tuple(NetPortRange("100.64.0.10", PortRange(p, p)) for p in range(1000, 1010)),
               (6, 17)),
), routes=("10.20.0.0/16",))


def listing(ruleset: dict[str, Any], single_flag_as_string: bool) -> dict[str, Any]:
    """The rendered objects as `nft -j list table` shows them."""
    out: list[dict[str, Any]] = [{"metainfo": {"version": "1.1.3", "json_schema_version": 1}}]
    for command in ruleset["nftables"]:
        if "add" not in command:
            continue
        obj = copy.deepcopy(command["add"])
        for body in obj.values():
            flags = body.get("flags")
            if single_flag_as_string and isinstance(flags, list) and len(flags) == 1:
                body["flags"] = flags[0]
        if "table" in obj and any("table" in o for o in out):
            continue  # the replace idiom adds the table twice
        out.append(obj)
    return {"nftables": out}


def test_single_flags_listed_as_a_string_are_not_drift() -> None:
    # nft >= 1.1 lists one flag as `"flags": "interval"`, older as a list.
    ruleset = render_ruleset(NODE, "wg0")
    for as_string in (False, True):
        observed = observed_state(listing(ruleset, as_string))
        assert compare_states(expected_state(ruleset), observed) == (), as_string


def test_a_changed_set_flag_is_still_drift() -> None:
    ruleset = render_ruleset(NODE, "wg0")
    shown = listing(ruleset, True)
    for obj in shown["nftables"]:
        if "set" in obj:
            obj["set"]["flags"] = "constant"
            break
    assert compare_states(expected_state(ruleset), observed_state(shown))


def test_a_dormant_table_is_drift() -> None:
    ruleset = render_ruleset(NODE, "wg0")
    for flags in ("dormant", ["dormant"]):
        shown = listing(ruleset, False)
        shown["nftables"][1]["table"]["flags"] = flags
        differences = compare_states(expected_state(ruleset), observed_state(shown))
        assert len(differences) == 1 and "dormant" in differences[0]


def test_hand_added_sets_of_names_or_macs_compare_without_raising() -> None:
    ruleset = render_ruleset(NODE, "wg0")
    for key, elem in (("ifname", "eth0"), ("ether_addr", "00:11:22:33:44:55"),
                      ("ipv4_addr", "not-an-address"), ("inet_proto", "no-such-proto"),
                      ("ipv4_addr", {"prefix": {"addr": "bogus", "len": 8}})):
        shown = listing(ruleset, False)
        shown["nftables"].append({"set": {"family": "inet", "table": "policyc", "name": "h",
                                          "type": key, "elem": [elem]}})
        assert compare_states(expected_state(ruleset), observed_state(shown)) == (
            "set h was added by hand",)
