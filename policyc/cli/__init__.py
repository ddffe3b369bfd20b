"""The `policyc` command line: parse arguments, call the library, render, exit.

Takes argv, gives an exit code; one module per command family, all thin.
A new command family is a new module here plus its commands' names in
`app.COMMAND_MODULES`: modules are imported only when their command runs.
"""

from policyc.cli.app import main

__all__ = ["main"]
