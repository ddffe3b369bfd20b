"""The agent's control client reads netmaps as large as real tailnets make them, and
gives up on an answer over its limit with a clear error instead of holding it all.

A member of a 10k-node dense tailnet gets a ~15 MB answer; the client's limit was
16 MiB. Here a real `control serve` hands a node a full netmap of more than 16 MiB
(a filter of 262,144 port ranges: cheap to compile, unlike 12k dense nodes), which
the real `ControlClient` polls over HTTP, opens and verifies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from control_harness import ControlServer
from nacl.public import PrivateKey
from test_control_nodes import ALICE, authkey

from policyc.control import init_state
from policyc.meshnode.client import MIB, TOO_LARGE, ControlClient, ControlError
from policyc.protocol import RegisterRequest, verify_netmap
from policyc.protocol.codec import canonical_json
from policyc.protocol.sealed import public_key_text

ODD_PORTS = ",".join(str(port) for port in range(1, 65536, 2))  # 32,768 ranges, unmergeable
# web's filter: tcp from two sources (one rule), udp, sctp: 4 x 32,768 ranges x web's
# two addresses = 262,144 DstPorts, ~15.7 MB of JSON, ~21 MB once base64'd in the envelope.
BIG_POLICY = """{
  "groups": {"group:dev": ["alice@example.com"]},
  "tagOwners": {"tag:web": ["group:dev"]},
  "acls": [
""" + ",\n".join(
    f'    {{"action": "accept", "src": ["{src}"], "proto": "{proto}", '
    f'"dst": ["tag:web:{ODD_PORTS}"]}}'
    for src, proto in (("group:dev", "tcp"), ("group:dev", "udp"), ("group:dev", "sctp"),
                       ("alice@example.com", "tcp"))) + "\n  ],\n}\n"
OLD_LIMIT = 16 * MIB


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlServer]:
    """A control server whose tag:web nodes get a netmap of more than 16 MiB."""
    state = tmp_path_factory.mktemp("big") / "state"
    init_state(state, BIG_POLICY)
    server = ControlServer(state).start()
    yield server
    server.kill()


def joined_client(control: ControlServer, hostname: str, **key: object) -> ControlClient:
    client = ControlClient(control.url, PrivateKey.generate())
    client.keys = client.server_keys()
    client.register(RegisterRequest(authkey(control, **key), hostname, (), None))
    return client


def test_a_netmap_over_the_old_16_mib_limit_arrives_and_verifies(big: ControlServer) -> None:
    joined_client(big, "alice", **ALICE).close()
    web = joined_client(big, "web", tags=["tag:web"])
    try:
        answer = web.poll(0)
    finally:
        web.close()
    assert answer.changed and answer.netmap is not None
    assert len(canonical_json(answer.netmap)) > OLD_LIMIT  # the box around it adds 4/3
    envelope = verify_netmap(answer.netmap, big.signing_key,
                             node_key=public_key_text(web.node_private))
    assert envelope.node == "web"
    assert sum(len(rule.dst_ports) for rule in envelope.netmap.packet_filter) == 4 * 32768 * 2


def test_an_answer_over_the_limit_is_refused_with_the_limit_named(big: ControlServer) -> None:
    web = joined_client(big, "web2", tags=["tag:web"])
    web.max_response_bytes = 4 * MIB
    try:
        with pytest.raises(ControlError) as refused:
            web.poll(0)
    finally:
        web.close()
    assert refused.value.code == TOO_LARGE and refused.value.transient
    assert "/machine/poll is too large" in str(refused.value)
    assert "at most 4 MiB" in str(refused.value)


class _Endless(BaseHTTPRequestHandler):
    """A broken server: 200, no Content-Length, then bytes until the client hangs up."""

    protocol_version = "HTTP/1.0"
    sent: ClassVar[list[int]] = []  # bytes written per request, before the client hung up

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b" " * (1 << 20)
        sent = 0
        try:
            for _ in range(1024):  # 1 GiB at most, should the client not stop
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        self.sent.append(sent)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_answer_without_a_length_is_cut_off_at_the_limit(endless: str) -> None:
    client = ControlClient(endless, PrivateKey.generate(), max_response_bytes=2 * MIB)
    try:
        with pytest.raises(ControlError) as refused:
            client.server_keys()
    finally:
        client.close()
    assert refused.value.code == TOO_LARGE
    assert "over 2,097,152 bytes" in str(refused.value)
    deadline = time.monotonic() + 30
    while not _Endless.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _Endless.sent and _Endless.sent[-1] < 64 * MIB  # it stopped reading, not at 1 GiB

