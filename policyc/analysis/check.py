"""What `policyc check` runs once a policy has loaded, shared with the language server.

One function, so the command line and the editor report the same codes,
messages and spans for the same file.
"""

from __future__ import annotations

from policyc.analysis.testrunner import TestReport, run_policy_tests
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.model import Policy


def check_loaded_policy(policy: Policy, inventory: Inventory | None, diags: Diagnostics, *,
                        run_tests: bool = True) -> TestReport | None:
    """Lint against the inventory (when there is one), then run `tests`/`sshTests`.

    Nothing runs on a policy that already has errors: its rules are not what
    the author meant, so warnings and test verdicts about them would mislead.
    """
    if diags.has_errors:
        return None
    if inventory is not None:
        from policyc.analysis.lint import lint_policy  # inventory checks only: import then

        lint_policy(policy, inventory, diags)
    return run_policy_tests(policy, inventory, diags) if run_tests else None
