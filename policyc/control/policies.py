"""Checking a policy before it is stored, and what the answers look like.

The server runs the same library entry points as `policyc check`: load
(parse, build, validate), then the policy's `tests`/`sshTests` against the
registered nodes. Diagnostics travel as JSON with their spans (line/column
and byte offsets), so a client holding the same text can render them with
carets exactly as `check` does.
"""

from __future__ import annotations

import hashlib
from typing import Any

from policyc.analysis.testrunner import run_policy_tests
from policyc.compiler.nodes import Inventory
from policyc.control.errors import ControlError
from policyc.control.limits import policy_too_large
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.render import to_dict
from policyc.policy.load import load_policy_text
from policyc.policy.model import AutoGroupRef, GroupRef, Policy, UserRef

POLICY_NAME = "policy.hujson"  # the file name diagnostics carry

# Tailscale's default policy: every node may reach every node; SSH to your own devices.
DEFAULT_POLICY = """// The default policy (Tailscale's): every device may reach every device.
{
  "acls": [
    {"action": "accept", "src": ["*"], "dst": ["*:*"]},
  ],
  "ssh": [
    {
      "action": "check",
      "src": ["autogroup:member"],
      "dst": ["autogroup:self"],
      "users": ["autogroup:nonroot", "root"],
    },
  ],
}
"""


def policy_etag(text: str) -> str:
    """The ETag of a policy: the SHA-256 of its exact text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def refuse_too_large(text: str) -> None:
    """413 `too-large` naming the limit when `text` is over it (before it is parsed)."""
    reason = policy_too_large(text)
    if reason is not None:
        raise ControlError(413, "too-large", f"{reason}; nothing was stored")


def check_policy(text: str, inventory: Inventory) -> tuple[Policy | None, Diagnostics]:
    """The policy if it loads and its tests pass against `inventory`; else None.

    With no node registered yet, tests run on the synthetic inventory, as
    `policyc check` without `--nodes` does.
    """
    policy, diags = load_policy_text(text, POLICY_NAME)
    if diags.has_errors:
        return None, diags
    run_policy_tests(policy, inventory if len(inventory) else None, diags)
    return (None if diags.has_errors else policy), diags


def diagnostics_json(diags: Diagnostics) -> list[dict[str, Any]]:
    out = []
    for diag in diags.sorted():
        item = to_dict(diag)
        item["offset"], item["end_offset"] = diag.span.start, diag.span.end
        out.append(item)
    return out


def user_owns_tag(policy: Policy, tag: str, user: str) -> bool:
    """Does `tagOwners` let `user` apply `tag` (directly, by group, or any member)?"""
    owners = policy.tag_owners.get(tag)
    if owners is None:
        return False
    for owner in owners.owners:
        if isinstance(owner, UserRef) and owner.login == user:
            return True
        if isinstance(owner, GroupRef):
            group = policy.groups.get(owner.name)
            if group is not None and user in group.logins:
                return True
        if isinstance(owner, AutoGroupRef) and owner.name == "autogroup:member":
            return True
    return False
