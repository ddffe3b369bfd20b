"""Machine output: compact JSON through orjson; indented for `--pretty` or a terminal.

Netmaps are encoded without building a dict per peer: `Peer` is a dataclass
whose fields are its wire keys, which orjson writes natively (a test keeps
`Peer.to_json` and this encoding equal).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace
from typing import IO, Any

import orjson

from policyc.netmap import NodeNetmap


def pretty_wanted(pretty: bool, stream: Any = None) -> bool:
    """Indent when asked to, or when a person reads the stream (a terminal)."""
    stream = sys.stdout if stream is None else stream
    return pretty or bool(getattr(stream, "isatty", lambda: False)())


def dumps(value: Any, *, pretty: bool) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)


def netmap_document(netmap: NodeNetmap) -> dict[str, Any]:
    """`netmap.to_json()` with the peers left as dataclasses for orjson to write."""
    document = replace(netmap, peers=()).to_json()
    document["peers"] = netmap.peers
    return document


def netmap_bytes(netmap: NodeNetmap, *, pretty: bool) -> bytes:
    return dumps(netmap_document(netmap), pretty=pretty)


def write_line(data: bytes, stream: IO[bytes] | None = None) -> None:
    out = sys.stdout.buffer if stream is None else stream
    out.write(data + b"\n")
    out.flush()


def write_netmap_object(items: Iterable[tuple[str, NodeNetmap]], *, pretty: bool,
                        stream: IO[bytes] | None = None) -> None:
    """`{"name": netmap, ...}` written one netmap at a time (never all in memory)."""
    out = sys.stdout.buffer if stream is None else stream
    out.write(b"{")
    first = True
    for name, netmap in items:
        body = netmap_bytes(netmap, pretty=pretty)
        if pretty:  # nest the indented document one level, as json.dumps(indent=2) does
            body = body.replace(b"\n", b"\n  ")
            out.write(b"\n  " if first else b",\n  ")
            out.write(orjson.dumps(name) + b": " + body)
        else:
            out.write(b"" if first else b",")
            out.write(orjson.dumps(name) + b":" + body)
        first = False
    out.write(b"\n}\n" if pretty and not first else b"}\n")
    out.flush()
