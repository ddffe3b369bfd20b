"""A client that sends too much gets the 413, whatever it does while sending.

Raw sockets on loopback against a real server, so nothing in a client library
retries or hides a reset: the client writes its whole (refused) body before it
reads, as httpx does, and must then read a complete 413 that names the limit.
Before the server read and dropped the rest of a refused body, it closed the
connection with the body unread, the kernel answered with a reset, and the 413
was lost (the flaky `test_oversized_bodies_are_refused`).
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
from control_harness import ControlServer
from test_control_policy_api import state_of

from policyc.control.limits import DEFAULT_MAX_BODY, DRAIN_SECONDS

ROUTE = "/api/v1/authkeys"  # an 8 MiB route: a refused body is quick to send
CHUNK = 65536


def connect(control: ControlServer) -> socket.socket:
    url = urlsplit(control.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sock.settimeout(30)
    return sock


def head(control: ControlServer, *fields: str) -> bytes:
    lines = [f"POST {ROUTE} HTTP/1.1", "Host: control", f"Authorization: Bearer {control.token}",
             "Content-Type: application/json", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body, read to the end of the connection."""
    data = b""
    while chunk := sock.recv(CHUNK):
        data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = header.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return int(status_line.split()[1]), headers, body


def assert_413(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413
    assert len(body) == int(headers["content-length"])  # all of it, not cut by a reset
    refusal = json.loads(body)
    assert refusal["error"] == "too-large"
    assert f"over {DEFAULT_MAX_BODY} bytes, the limit for POST {ROUTE}" in refusal["detail"]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_that_sends_its_whole_refused_body_reads_the_413(
        shared_control: ControlServer, framing: str) -> None:
    before = state_of(shared_control)
    size = DEFAULT_MAX_BODY + 4 * 1024 * 1024
    with connect(shared_control) as sock:
        if framing == "chunked":
            sock.sendall(head(shared_control, "Transfer-Encoding: chunked"))
            piece = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
            for _ in range(size // CHUNK):
                sock.sendall(piece)
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(head(shared_control, f"Content-Length: {size}"))
            sock.sendall(b" " * size)
        assert_413(*answer(sock))
    assert state_of(shared_control) == before


def test_a_client_that_waits_for_100_continue_is_answered_without_sending(
        shared_control: ControlServer) -> None:
    with connect(shared_control) as sock:
        sock.sendall(head(shared_control, f"Content-Length: {DEFAULT_MAX_BODY + 1}",
                          "Expect: 100-continue"))
        assert_413(*answer(sock))


def test_a_declared_length_far_over_the_limit_is_answered_at_once(
        shared_control: ControlServer) -> None:
    """The server reads at most twice the limit of a refused body: a client that
    declares a terabyte is answered before it sends a byte of it."""
    with connect(shared_control) as sock:
        sock.sendall(head(shared_control, f"Content-Length: {10 ** 12}"))
        sock.settimeout(DRAIN_SECONDS / 2)  # not read and dropped until the drain gives up
        assert_413(*answer(sock))
