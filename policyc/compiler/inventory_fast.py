"""The inventory's fast path: a clean JSON file read without the value tree.

`inventory.load_inventory` tries `fast_inventory` first. It reads the file
with orjson and judges every node with the predicates `nodecheck.py` uses,
but returns an `Inventory` only when the checked path (parse with spans,
`nodecheck.entry_node`, `uniqueness.unique_nodes`) would give the same nodes
and report nothing at all: no error, no warning. On anything else (HuJSON
comments, the devices shape, a `users` list, an escape, a bad or duplicate
node, anything it is unsure of) it returns None and the checked path reports
every problem where it was written. Validation is fast; locations are worked
out only when something is wrong.

Spans without the tree: the file has no backslash, so every `"` in it
delimits a string, and it holds exactly one `{` and one `}` per JSON object
(counted), so no string holds a brace and the braces in document order are
the objects': the top-level one, then each node's (nodes hold no objects).
A node's name and tags are found by key inside its braces. Repeated keys
(orjson keeps the last, the checked path the first and reports it) are
caught by counting key tokens against orjson's keys.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import socket
from collections.abc import Iterator
from functools import partial
from itertools import chain, compress, islice, repeat
from typing import Any

import orjson

from policyc.compiler.names import DNS_LABEL, MAX_NAME
from policyc.compiler.nodecheck import (
    EXIT_ROUTES,
    TAILNET_RANGES,
    parse_endpoint,
)
from policyc.compiler.nodefields import NODE_FIELDS
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.source import SourceFile, Span
from policyc.policy.aliases import TAG_NAME, parse_network
from policyc.policy.model import IPAddress, IPNetwork

_WS = r"[ \t\n\r]*"
# A key token of a node field or of the top level (keys are followed by `:`,
# values never are); with no `"` inside strings this counts keys exactly.
_KEYS = re.compile("\"(?:" + "|".join(sorted(NODE_FIELDS | {"nodes"})) + f")\"{_WS}:")
_NAME = re.compile(f'"name"{_WS}:{_WS}"')
_TAGS = re.compile(f'"tags"{_WS}:{_WS}\\[')
_BRACES = re.compile(r"[{}]")
_BIG_ENDIAN = partial(int.from_bytes, byteorder="big")
_TAILNET_BOUNDS = {net.version: (int(net.network_address), int(net.broadcast_address))
                   for net in TAILNET_RANGES}
# One text per line, each what `is_dns_name`, `is_tag` and `key_is_valid` accept.
_DNS_NAMES = re.compile(f"(?:{DNS_LABEL.pattern}(?:\\.{DNS_LABEL.pattern})*\n)*")
_TAG_NAMES = re.compile(f"(?:tag:{TAG_NAME.pattern}\n)*")
_KEY = re.compile("(?:[A-Za-z0-9+/]{43}=\n)*")


class _Unsure(Exception):
    """The checked path would report something, or might read the file otherwise."""


def fast_inventory(source: SourceFile) -> Inventory | None:
    """The inventory, when `source` is clean JSON of our shape; None otherwise."""
    text = source.text
    if "\\" in text:
        return None
    try:
        tree = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(tree, dict) and tree.keys() == {"nodes"} and isinstance(tree["nodes"], list):
        entries, top = tree["nodes"], 1
    elif isinstance(tree, list):
        entries, top = tree, 0
    else:
        return None
    if not all(type(entry) is dict for entry in entries):
        return None
    objects = len(entries) + top
    if text.count("{") != objects or text.count("}") != objects:
        return None  # a brace inside a string, or an object inside a node
    if len(_KEYS.findall(text)) != top + sum(map(len, entries)):
        return None  # a repeated key
    try:
        values = _node_values(entries)
        _check_unique(values)
    except _Unsure:
        return None
    return Inventory.of(_with_spans(source, values, top))


# (name, user, tags, ips, key, routes, exit_node, endpoint), as Node takes them
_Values = tuple[str, str | None, tuple[str, ...], tuple[IPAddress, ...], str,
                tuple[IPNetwork, ...], bool, str | None]
_NONE = type(None)


def _column(entries: list[dict[str, Any]], field: str, *types: type) -> list[Any]:
    """One field of every node (None where absent), each of one of `types`."""
    values = list(map(dict.get, entries, repeat(field)))
    if not set(map(type, values)) <= {_NONE, *types}:
        raise _Unsure  # a wrong JSON type (I401)
    return values


def _node_values(entries: list[dict[str, Any]]) -> list[_Values]:
    """Every node as `nodecheck.check_node_fields` makes it, when none reports
    anything; checked a field at a time, mostly by C-level passes over all nodes."""
    if not all(map(NODE_FIELDS.issuperset, entries)):
        raise _Unsure  # an unknown field (I401)
    if any(v is not None for v in map(dict.get, entries, repeat("approved_routes"))):
        raise _Unsure  # compared with routes (I414)
    _strings(_column(entries, "advertised_routes", list))  # not read, but no numbers
    names = _column(entries, "name", str)
    if _NONE in set(map(type, names)) or not _all_match(_DNS_NAMES, names) or \
            max(map(len, names), default=0) > MAX_NAME:
        raise _Unsure  # I401, I408
    tags = _strings(_column(entries, "tags", list))
    if not _all_match(_TAG_NAMES, list(chain.from_iterable(tags))):
        raise _Unsure  # I401
    users = [_user(user, tagged) for user, tagged
             in zip(_column(entries, "user", str), tags, strict=True)]
    return list(zip(names, users, tags, _ips(_strings(_column(entries, "ips", list))),
                    _keys(_column(entries, "key", str)),
                    map(_routes, _strings(_column(entries, "routes", list))),
                    [bool(v) for v in _column(entries, "exit_node", bool)],
                    map(_endpoint, _column(entries, "endpoint", str)), strict=True))


def _all_match(lines: re.Pattern[str], texts: list[str]) -> bool:
    """Does every text match `lines`' one-line pattern? One regex over them all."""
    if not texts:
        return True
    joined = "\n".join(texts)
    return joined.count("\n") == len(texts) - 1 and lines.fullmatch(joined + "\n") is not None


def _strings(values: list[Any]) -> list[tuple[str, ...]]:
    """Arrays of strings (None: no array)."""
    out = [tuple(v) if v is not None else () for v in values]
    if not set(map(type, chain.from_iterable(out))) <= {str}:
        raise _Unsure  # I401
    return out


def _user(user: str | None, tags: tuple[str, ...]) -> str | None:
    """A tagged node belongs to its tags: a login is kept, other text dropped."""
    if tags:
        return user if user is not None and "@" in user else None
    if user is None or "@" not in user:
        raise _Unsure  # I406, I401
    return user


def _ips(per_node: list[tuple[str, ...]]) -> list[tuple[IPAddress, ...]]:
    """Mesh addresses: at least one a node, each in Tailscale's ranges, none held
    twice (by one node or by two). All of them are read by the C parser and
    must be written the way it writes them back, so equal texts are equal
    addresses; any other spelling is left to the checked path."""
    counts = list(map(len, per_node))
    texts = list(map(str.strip, chain.from_iterable(per_node)))
    if 0 in counts or len(set(texts)) != len(texts):
        raise _Unsure  # I405, I402
    is_v6 = list(map(str.__contains__, texts, repeat(":")))
    v4 = _family(list(compress(texts, map(operator.not_, is_v6))), socket.AF_INET)
    v6 = _family(list(compress(texts, is_v6)), socket.AF_INET6)
    ips = [next(v6) if six else next(v4) for six in is_v6]
    flat = iter(ips)
    return [tuple(islice(flat, count)) for count in counts]


def _family(texts: list[str], family: int) -> Iterator[IPAddress]:
    """One family's addresses, in order; all canonical and in Tailscale's range."""
    try:
        packed = list(map(socket.inet_pton, repeat(family), texts))
    except OSError:
        raise _Unsure from None  # I401, or a form for ipaddress to judge
    if list(map(socket.inet_ntop, repeat(family), packed)) != texts:
        raise _Unsure
    ints = list(map(_BIG_ENDIAN, packed))
    v6 = family == socket.AF_INET6
    low, high = _TAILNET_BOUNDS[6 if v6 else 4]
    if ints and not (low <= min(ints) and max(ints) <= high):
        raise _Unsure  # I411 (an unusable address, I401, is outside the range too)
    make = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    return map(make, ints)


def _keys(keys: list[str | None]) -> list[str]:
    given = [key for key in keys if key]
    if not _all_match(_KEY, given):
        raise _Unsure  # I403 (32 bytes of standard base64 is exactly this)
    return [key or "" for key in keys]


def _routes(texts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    out = []
    for text in texts:
        network = parse_network(text.strip())
        if network is None or network in EXIT_ROUTES or (
                "/" in text and str(network) != text.strip()):
            raise _Unsure  # I401, I410, I413
        out.append(network)
    return tuple(out)


def _endpoint(value: str | None) -> str | None:
    parsed = parse_endpoint(value) if value is not None else None
    if value is not None and parsed is None:
        raise _Unsure  # I409
    return parsed


def _check_unique(values: list[_Values]) -> None:
    """No two nodes share a name (case-insensitively) or a key (I402)."""
    names = {v[0].lower() for v in values}  # addresses: `_ips`
    keys = [v[4] for v in values if v[4]]
    if len(names) != len(values) or len(set(keys)) != len(keys):
        raise _Unsure


def _with_spans(source: SourceFile, values: list[_Values], top: int) -> list[Node]:
    """The nodes, each with the spans of its entry, its name and its tags."""
    text = source.text
    braces = [m.start() for m in _BRACES.finditer(text)]
    # Document order: the top-level `{` (if any), then `{` `}` per node.
    starts, ends = braces[top::2], braces[top + 1::2]
    nodes = []
    for v, start, end in zip(values, starts, ends, strict=False):
        stop = end + 1
        name_at = _NAME.search(text, start, stop)
        assert name_at is not None  # every node has a name (checked)
        name_span = Span(source, name_at.end() - 1, name_at.end() + len(v[0]) + 1)
        nodes.append(Node(*v, span=Span(source, start, stop),
                          tag_spans=_tag_spans(source, start, stop, len(v[2])),
                          name_span=name_span))
    return nodes


def _tag_spans(source: SourceFile, start: int, stop: int, count: int) -> tuple[Span, ...]:
    if not count:
        return ()
    text = source.text
    found = _TAGS.search(text, start, stop)
    assert found is not None  # a node with tags has the field
    spans, at = [], found.end()
    for _ in range(count):
        first = text.index('"', at)
        at = text.index('"', first + 1) + 1
        spans.append(Span(source, first, at))
    return tuple(spans)
