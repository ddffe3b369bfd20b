"""What lies between tokens, and how a STRING or NUMBER token's text becomes its value.

Shared by lark's tree builder (`hujson_lark.py`), which turns a None or an
error into a P003/P004 diagnostic, and by the fast path (`hujson_fast.py`),
which hands such a text to lark: one reading, so both give the same values.
"""

from __future__ import annotations

import json
import math
import re

# Whitespace and comments: what may stand between two tokens.
IGNORED = re.compile(r"(?:[ \t\r\n]+|//[^\n]*|/\*(?s:.*?)\*/)+")
JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Python refuses to convert longer digit strings to int (CVE-2020-10735 guard).
_MAX_INT_DIGITS = 4300


def decode_string(raw: str) -> str:
    """The value of a quoted JSON string with escapes; json.JSONDecodeError if invalid."""
    # json's own decoder: escapes and surrogate pairs exactly like json.
    value: str = json.loads(raw)
    # An escaped lone surrogate ("\ud800") is not a character: Go's decoder
    # (Tailscale's) reads it as U+FFFD, and a str holding one cannot even
    # be written out as UTF-8.
    return _LONE_SURROGATE.sub("\ufffd", value)


def json_number(raw: str) -> int | float | None:
    """The value of a JSON number, or None if it is not one or is out of range."""
    match = JSON_NUMBER.fullmatch(raw)
    if match is None:
        return None
    if match.group(1) is None and match.group(2) is None:
        if len(raw.lstrip("-")) <= _MAX_INT_DIGITS:
            return int(raw)
        return None
    number = float(raw)
    # Go's decoder (Tailscale's) rejects numbers a float64 cannot hold too.
    return number if math.isfinite(number) else None
