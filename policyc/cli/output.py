"""Machine output: compact JSON through orjson; indented for `--pretty` or a terminal.

Netmaps are encoded without building a dict per peer: `Peer` is a dataclass
whose fields are its wire keys, which orjson writes natively (a test keeps
`Peer.to_json` and this encoding equal). Many netmaps (`compile` to a directory
or stdout) go through one `NetmapEncoder`, which encodes each shared peer entry
and SrcIPs list once and joins the cached bytes (netmap_json.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import orjson

from policyc.cli.netmap_json import NetmapEncoder
from policyc.netmap import NodeNetmap

IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


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
    encoder = NetmapEncoder(pretty=pretty)
    for name, netmap in items:
        body = encoder.netmap(netmap)
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


def write_netmap_files(items: Iterable[tuple[str, NodeNetmap]], paths: Mapping[str, Path],
                       *, pretty: bool) -> None:
    """Each netmap to its file (and a newline), assembled from fragments shared
    between netmaps (`NetmapEncoder`) and written without joining them."""
    encoder = NetmapEncoder(pretty=pretty)
    for name, netmap in items:
        chunks = encoder.chunks(netmap)
        chunks.append(b"\n")
        write_chunks(paths[name], chunks)


def write_chunks(path: Path, chunks: list[bytes]) -> None:
    """Write `chunks` as the file at `path` (created or truncated) with writev."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                 0o666)
    try:
        start = 0
        while start < len(chunks):
            batch = chunks[start:start + IOV_MAX]
            written = os.writev(fd, batch)
            start += len(batch)
            if written < sum(map(len, batch)):  # short write: the rest one by one
                _write_rest(fd, batch, written)
    finally:
        os.close(fd)


def _write_rest(fd: int, batch: list[bytes], written: int) -> None:
    for chunk in batch:
        if written >= len(chunk):
            written -= len(chunk)
            continue
        view = memoryview(chunk)[written:]
        written = 0
        while view:
            view = view[os.write(fd, view):]
