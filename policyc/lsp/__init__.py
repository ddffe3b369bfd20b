"""The language server (`policyc lsp`): the library's answers, in an editor.

Takes LSP requests over stdio; gives `policyc check`'s diagnostics live, hover,
definition, references, rename, completion, quick fixes, outline and
formatting. Calls the library (policy, analysis, compiler, fmt), never the CLI.
"""
