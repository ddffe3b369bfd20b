"""Questions about a policy: the reference evaluator, `tests`, explain, lint,
and the review tools (access diff, verified assertions, the access map).

Takes a `Policy` (and an inventory); gives verdicts, explanations and diagnostics.
"""

from policyc.analysis.diff import AccessDiff, access_diff
from policyc.analysis.explain import Explanation, explain
from policyc.analysis.lint import lint_policy
from policyc.analysis.offline import synthetic_inventory
from policyc.analysis.reference import ReferenceEvaluator
from policyc.analysis.testrunner import TestReport, run_policy_tests
from policyc.analysis.verify import VerifyReport, verify

__all__ = ["AccessDiff", "Explanation", "ReferenceEvaluator", "TestReport", "VerifyReport",
           "access_diff", "explain", "lint_policy", "run_policy_tests", "synthetic_inventory",
           "verify"]
