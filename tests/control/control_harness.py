"""A real `policyc control serve` on loopback, and simulated nodes that speak the protocol.

`ControlServer` runs the CLI in a subprocess (port 0; the URL is read from its
stderr), so tests see exactly what an operator runs: uvicorn, the SQLite file,
signals. `SimNode` is a node without enforcement: its own X25519 key, boxed
requests, and every netmap verified against the pinned signing key.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nacl.public import PrivateKey

from policyc.protocol import (
    NetmapEnvelope,
    PollRequest,
    PollResponse,
    RegisterRequest,
    RegisterResponse,
    RemovalNotice,
    open_response,
    seal_request,
    verify_netmap,
    verify_removal,
)
from policyc.protocol.delta import apply_delta, verify_delta
from policyc.protocol.messages import KIND_POLL, KIND_REGISTER, PATH_POLL, PATH_REGISTER
from policyc.protocol.sealed import SealedRequest, public_key_text

STARTUP_SECONDS = 60.0

# The policy each test's control state starts with (conftest's fixtures; tests compare with it).
POLICY = """{
  "groups": {"group:dev": ["alice@example.com"]},
  "tagOwners": {
    "tag:web": ["group:dev"],
    "tag:db": ["bob@example.com"],
    "tag:router": ["alice@example.com"],
  },
  "acls": [
    {"action": "accept", "src": ["group:dev"], "dst": ["tag:web:443"]},
    {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},
    {"action": "accept", "src": ["group:dev"], "dst": ["10.20.0.0/16:*"]},
  ],
}
"""


class ControlServer:
    def __init__(self, state: Path, *, poll_timeout: float = 2.0, node_expiry: str = "180d",
                 ) -> None:
        self.state = state
        self.poll_timeout = poll_timeout
        self.node_expiry = node_expiry
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.stderr_lines: list[str] = []

    @property
    def token(self) -> str:
        return (self.state / "admin.token").read_text().strip()

    @property
    def signing_key(self) -> str:
        return (self.state / "signing.pub").read_text().strip()

    @property
    def box_key(self) -> str:
        return (self.state / "box.pub").read_text().strip()

    def start(self) -> ControlServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "policyc.cli", "control", "serve", "--state", str(self.state),
             "--listen", "127.0.0.1:0", "--poll-timeout", str(self.poll_timeout),
             "--node-expiry", self.node_expiry],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=dict(os.environ))
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                found = re.search(r"listening on (http://\S+)", line)
                if found:
                    self.url = found.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(STARTUP_SECONDS)
        if not self.url:
            self.kill()
            raise RuntimeError("control did not start: " + "".join(self.stderr_lines))
        return self

    def stop(self) -> int:
        """SIGTERM, then the exit code (the server must drain and exit 0)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None

    def admin(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, headers={
            "Authorization": f"Bearer {self.token if token is None else token}"})

    def node(self, hostname: str = "node") -> SimNode:
        return SimNode(self, hostname)


class NodeRefused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.code = str(body.get("error"))


class NodeRemoved(Exception):
    """A poll answered with control's removal notice (verified against signing.pub)."""

    def __init__(self, notice: RemovalNotice, signed: dict[str, Any]) -> None:
        super().__init__(f"removed: {notice.reason}")
        self.notice = notice
        self.signed = signed


@dataclass
class SimNode:
    control: ControlServer
    hostname: str
    private: PrivateKey = field(default_factory=PrivateKey.generate)
    version: int = 0
    envelope: NetmapEnvelope | None = None
    signed: dict[str, Any] | None = None  # the last netmap's wire form
    name: str = ""
    addresses: tuple[str, ...] = ()
    deltas: bool = False  # offer to take deltas onto the netmap held (as the agent does)
    answers: list[str] = field(default_factory=list)  # "full" or "delta", per new netmap

    @property
    def key(self) -> str:
        return public_key_text(self.private)

    def seal(self, kind: str, body: dict[str, Any]) -> SealedRequest:
        return seal_request(self.private, self.control.box_key, kind, body)

    def post(self, path: str, wire: object, timeout: float = 90.0) -> httpx.Response:
        return httpx.post(self.control.url + path, json=wire, timeout=timeout)

    def _call(self, path: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        sealed = self.seal(kind, body)
        response = self.post(path, sealed.wire)
        if response.status_code != 200:
            raise NodeRefused(response.status_code, response.json())
        return open_response(self.private, self.control.box_key, response.json(), sealed, kind)

    def register(self, auth_key: str, routes: tuple[str, ...] = (),
                 endpoint: str | None = None) -> RegisterResponse:
        answer = RegisterResponse.from_json(self._call(
            PATH_REGISTER, KIND_REGISTER,
            RegisterRequest(auth_key, self.hostname, routes, endpoint).to_json()))
        self.name, self.addresses = answer.name, answer.addresses
        return answer

    def poll(self, since: int | None = None) -> NetmapEnvelope | None:
        """One long-poll; a new netmap is verified and kept, None is "no change";
        NodeRemoved when control answers with its signed removal notice."""
        offer = self.deltas and since is None and self.envelope is not None
        answer = PollResponse.from_json(self._call(
            PATH_POLL, KIND_POLL,
            PollRequest(self.version if since is None else since, offer).to_json()))
        if answer.removed is not None:
            notice = verify_removal(answer.removed, self.control.signing_key, node_key=self.key,
                                    newer_than=self.version or None)
            raise NodeRemoved(notice, answer.removed)
        if not answer.changed:
            return None
        if answer.delta is not None:
            assert offer and self.envelope is not None, "a delta nobody asked for"
            delta = verify_delta(answer.delta, self.control.signing_key, node_key=self.key,
                                 base=self.version)
            self.envelope = apply_delta(self.envelope, delta)
            self.version, self.signed = delta.version, None
            self.answers.append("delta")
            return self.envelope
        self.answers.append("full")
        envelope = verify_netmap(answer.netmap, self.control.signing_key, node_key=self.key,
                                 newer_than=self.version if since is None else since)
        self.version, self.envelope, self.signed = envelope.version, envelope, answer.netmap
        return envelope

    def full_netmap(self) -> NetmapEnvelope:
        """The full envelope control would send now (a poll with no base and no deltas),
        without changing what this node holds."""
        answer = PollResponse.from_json(self._call(PATH_POLL, KIND_POLL,
                                                   PollRequest(0).to_json()))
        return verify_netmap(answer.netmap, self.control.signing_key, node_key=self.key)

    def peer_keys(self) -> set[str]:
        assert self.envelope is not None
        return {p.key for p in self.envelope.netmap.peers}
