"""`policyc fmt`: the canonical, comment-preserving layout of a HuJSON file.

Takes HuJSON text; gives the same text laid out canonically, or the grammar's
P0xx diagnostics when it is not HuJSON. A grammar-level tool: it needs only the
text (never the policy model), so it formats any HuJSON file, policy or
inventory, with or without policy errors.
"""

from policyc.fmt.format import format_source, format_text

__all__ = ["format_source", "format_text"]
