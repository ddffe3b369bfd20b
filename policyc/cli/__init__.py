"""The `policyc` command line: parse arguments, call the library, render, exit.

Takes argv, gives an exit code; one module per command family, all thin.
"""

from policyc.cli import (
    apply_cmds,
    control_cmds,
    editor_cmds,
    enforce_cmds,
    node_cmds,
    policy_cmds,
    review_cmds,
)
from policyc.cli.app import main

__all__ = ["apply_cmds", "control_cmds", "editor_cmds", "enforce_cmds", "main", "node_cmds",
           "policy_cmds", "review_cmds"]
