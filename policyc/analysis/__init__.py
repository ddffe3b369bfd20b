"""Questions about a policy: the reference evaluator, `tests`, explain, lint.

Takes a `Policy` (and an inventory); gives verdicts, explanations and diagnostics.
"""

from policyc.analysis.explain import Explanation, explain
from policyc.analysis.lint import lint_policy
from policyc.analysis.reference import ReferenceEvaluator
from policyc.analysis.testrunner import TestReport, run_policy_tests, synthetic_inventory

__all__ = ["Explanation", "ReferenceEvaluator", "TestReport", "explain", "lint_policy",
           "run_policy_tests", "synthetic_inventory"]
