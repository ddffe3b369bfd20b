"""What a node name may be, and the one file a name may become.

Node names come from inventory files and, soon, from the network (node
registration, Tailscale API device lists); `compile -o DIR` turns each into a
file name. So a name must be a DNS label or a dotted DNS name (RFC 1123 host
names: letters, digits and inner hyphens, 1-63 characters a label, 253 in
all), and, as defence in depth for callers that skip validation, an output
path is only ever accepted when it resolves to a direct child of its folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_NAME = 253


def is_dns_name(text: str) -> bool:
    """A DNS label, or labels joined by single dots (no trailing dot)."""
    return (0 < len(text) <= MAX_NAME
            and all(DNS_LABEL.fullmatch(label) for label in text.split(".")))


def suggest_dns_name(text: str) -> str | None:
    """The nearest valid name for a did-you-mean: lower case, each run of other
    characters a hyphen, empty labels dropped (`Bob's Laptop` -> `bob-s-laptop`,
    `../x` -> `x`); None when nothing usable is left or nothing changes."""
    labels = []
    for label in text.lower().split("."):
        cleaned = re.sub(r"[^a-z0-9]+", "-", label).strip("-")[:63].strip("-")
        if cleaned:
            labels.append(cleaned)
    guess = ".".join(labels)[:MAX_NAME].strip(".-")
    return guess if guess and guess != text and is_dns_name(guess) else None


def contained_path(directory: Path, filename: str) -> Path | None:
    """`directory/filename` if it is a direct child of `directory` once every
    symlink is resolved; None for `..`, separators, absolute names, NUL, or a
    link (planted or not) that leads elsewhere."""
    if (not filename or filename in (".", "..") or "\0" in filename
            or os.sep in filename or (os.altsep and os.altsep in filename)):
        return None
    root = directory.resolve()
    candidate = (root / filename).resolve()
    return candidate if candidate.parent == root and candidate.name == filename else None
