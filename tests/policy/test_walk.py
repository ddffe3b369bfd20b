"""The alias walkers name every section they promise, and nothing else."""

from __future__ import annotations

from policyc.policy.load import load_policy_text
from policyc.policy.model import TagRef
from policyc.policy.walk import policy_test_aliases, routing_aliases, rule_aliases

# Each section names its own tag, so a walker's output says which sections it read.
POLICY = """{
  "tagOwners": {
    "tag:acl-src": ["tag:owner"], "tag:acl-dst": [], "tag:grant-src": [],
    "tag:grant-dst": [], "tag:via": [], "tag:ssh-src": [], "tag:ssh-dst": [],
    "tag:owner": [], "tag:route": [], "tag:exit": [], "tag:attr": [], "tag:test": [],
    "tag:ssh-test": [],
  },
  "acls": [{"action": "accept", "src": ["tag:acl-src"], "dst": ["tag:acl-dst:22"]}],
  "grants": [{"src": ["tag:grant-src"], "dst": ["10.0.0.0/8"], "ip": ["*"],
              "via": ["tag:via"]},
             {"src": ["tag:grant-src"], "dst": ["tag:grant-dst"], "ip": ["*"]}],
  "ssh": [{"action": "accept", "src": ["tag:ssh-src"], "dst": ["tag:ssh-dst"],
           "users": ["root"]}],
  "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:route"]}, "exitNode": ["tag:exit"]},
  "nodeAttrs": [{"target": ["tag:attr"], "attr": ["funnel"]}],
  "tests": [{"src": "tag:test", "accept": ["tag:acl-dst:22"]}],
  "sshTests": [{"src": "tag:ssh-test", "dst": ["tag:ssh-dst"], "accept": ["root"]}],
}"""


def _tags(aliases: object) -> set[str]:
    return {a.name for a in aliases if isinstance(a, TagRef)}  # type: ignore[attr-defined]


def test_each_walker_reads_exactly_its_sections() -> None:
    policy, diags = load_policy_text(POLICY)
    assert policy is not None and not diags.has_errors, [str(d) for d in diags]
    assert _tags(rule_aliases(policy)) == {
        "tag:acl-src", "tag:acl-dst", "tag:grant-src", "tag:grant-dst", "tag:ssh-src",
        "tag:ssh-dst", "tag:owner", "tag:route", "tag:exit"}
    assert _tags(routing_aliases(policy)) == {"tag:via", "tag:attr"}
    assert _tags(policy_test_aliases(policy)) == {"tag:test", "tag:acl-dst", "tag:ssh-test",
                                           "tag:ssh-dst"}
