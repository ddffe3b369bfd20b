"""Questions about a policy: the reference evaluator, `tests`, explain, lint,
and the review tools (access diff, verified assertions, the access map).

Takes a `Policy` (and an inventory); gives verdicts, explanations and diagnostics.

Names are imported on first use (PEP 562), so `policyc check` importing
`policyc.analysis.check` does not pull in the review tools (diff, verify).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyc.analysis.diff import AccessDiff, access_diff
    from policyc.analysis.explain import Explanation, explain
    from policyc.analysis.lint import lint_policy
    from policyc.analysis.offline import synthetic_inventory
    from policyc.analysis.reference import ReferenceEvaluator
    from policyc.analysis.testrunner import TestReport, run_policy_tests
    from policyc.analysis.verify import VerifyReport, verify

_WHERE = {
    "AccessDiff": "diff", "access_diff": "diff", "Explanation": "explain", "explain": "explain",
    "lint_policy": "lint", "synthetic_inventory": "offline",
    "ReferenceEvaluator": "reference", "TestReport": "testrunner",
    "run_policy_tests": "testrunner", "VerifyReport": "verify", "verify": "verify",
}

__all__ = ["AccessDiff", "Explanation", "ReferenceEvaluator", "TestReport", "VerifyReport",
           "access_diff", "explain", "lint_policy", "run_policy_tests", "synthetic_inventory",
           "verify"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'policyc.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"policyc.analysis.{module}"), name)
