"""The local socket: root-only mode, one JSON line each way, bad requests answered."""

from __future__ import annotations

import socket
import stat
from pathlib import Path
from typing import Any

from policyc.meshnode.localapi import LocalApi, ask


def echo(request: dict[str, Any]) -> dict[str, Any]:
    return {"you_said": request}


def test_the_socket_is_0600_answers_and_is_gone_after_close(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    api = LocalApi(path, echo)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert ask(path, {"op": "status"}) == {"you_said": {"op": "status"}}
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(str(path))
        raw.sendall(b"[1, 2]\n")
        assert b"bad request" in raw.recv(4096)
        raw.close()
    finally:
        api.close()
    assert not path.exists()
    assert ask(path, {"op": "status"}) is None


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    api = LocalApi(path, echo)
    try:
        assert ask(path, {"op": "x"}) == {"you_said": {"op": "x"}}
    finally:
        api.close()
