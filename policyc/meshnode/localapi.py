"""The agent's local socket: `node status` and `node whois` ask the running agent.

A Unix stream socket in the state directory, mode 0600 (and the directory is
0700), so only root reaches it. One JSON request line, one JSON answer line:

    {"op": "status"}                 -> Status.to_json
    {"op": "whois", "addr": "IP[:P]"} -> {"found": bool, "whois": WhoisAnswer | null}

Requests are bounded (4 KiB) and answered by a daemon thread per connection;
nothing a request says reaches a shell or a path.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_REQUEST_BYTES = 4096
CLIENT_TIMEOUT_SECONDS = 5.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handle_request_json: Handler


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.connection.settimeout(CLIENT_TIMEOUT_SECONDS)
        try:
            line = self.rfile.readline(MAX_REQUEST_BYTES)
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request must be an object")
            answer = self.server.handle_request_json(request)
        except (OSError, ValueError) as err:
            answer = {"error": f"bad request: {err}"}
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(answer).encode() + b"\n")


class LocalApi:
    """Serves `handler` on `path` until `close`."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by an agent that died
        old_umask = os.umask(0o177)  # born 0600: no window where others may connect
        try:
            self._server = _Server(str(path), _Connection)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._server.handle_request_json = handler
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="policyc-localapi", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def ask(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The running agent's answer, or None if no agent listens on `path`."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(CLIENT_TIMEOUT_SECONDS)
    try:
        conn.connect(str(path))
        conn.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        conn.close()
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
