"""The policy language: HuJSON value tree -> a typed, validated `Policy`.

Takes a policy file or text; gives the model (`model.py`) and E1xx diagnostics.
"""

from policyc.policy.load import load_policy_file, load_policy_source, load_policy_text
from policyc.policy.model import Policy

__all__ = ["Policy", "load_policy_file", "load_policy_source", "load_policy_text"]
