"""Source text with spans, the Diagnostic model, the code registry and its renderers.

Takes nothing of policyc; gives every other stage a way to report a located problem.
"""

from policyc.diagnostics.codes import CODES
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics, Severity, did_you_mean
from policyc.diagnostics.source import NO_SPAN, SourceFile, Span

__all__ = ["CODES", "NO_SPAN", "Diagnostic", "Diagnostics", "Severity", "SourceFile", "Span",
           "did_you_mean"]
