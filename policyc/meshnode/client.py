"""Talking to control: every request boxed with the node key, every answer opened.

Control's paths are the only HTTP detail the agent knows. `ControlError` says
whether a failure is the network (retry with backoff: control may come back) or a
refusal (control answered no: a bad auth key will not get better by retrying).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from nacl.public import PrivateKey

from policyc.protocol import (
    PollRequest,
    PollResponse,
    ProtocolError,
    RegisterRequest,
    RegisterResponse,
    ServerKeys,
    open_response,
    seal_request,
)
from policyc.protocol.codec import parse_object
from policyc.protocol.messages import KIND_POLL, KIND_REGISTER, POLL_TIMEOUT_SECONDS

PATH_KEY = "/key"  # GET: control's public keys
PATH_REGISTER = "/machine/register"  # POST: sealed RegisterRequest
PATH_POLL = "/machine/poll"  # POST: sealed PollRequest (long-poll)
CONNECT_TIMEOUT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 15.0
MIB = 1024 * 1024
# The largest answer the agent reads: it bounds what a broken or hostile server can make
# it hold, and must never refuse a real tailnet's netmap. A full netmap grows with the
# node's peers, ~1.5 KB each on the wire (its JSON is base64'd in the signed envelope,
# then again around the box): a member of a 10k-node dense tailnet (dense_gen) is
# 14.8 MB. 256 MiB is ~170k such peers; the answer is read in chunks and given up at
# the limit (before reading anything when Content-Length says so).
MAX_RESPONSE_BYTES = 256 * MIB
MAX_ERROR_BYTES = 64 * 1024  # a refusal's {"error", "detail"}
TOO_LARGE = "too-large"


class ControlError(Exception):
    """A request to control failed. `transient`: worth retrying later."""

    def __init__(self, message: str, *, transient: bool, code: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


@dataclass(frozen=True, slots=True)
class Answer:
    """Control's HTTP answer, read in full (within the limit)."""

    status: int
    content: bytes


@dataclass
class ControlClient:
    server: str  # base URL, e.g. http://127.0.0.1:8080
    node_private: PrivateKey
    keys: ServerKeys | None = None  # control's pinned keys; None until the first join
    max_response_bytes: int = MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        self.server = self.server.rstrip("/")
        self._http = httpx.Client(timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS,
                                                        connect=CONNECT_TIMEOUT_SECONDS))

    def close(self) -> None:
        self._http.close()

    def server_keys(self) -> ServerKeys:
        """Control's public keys as it presents them (to be pinned by the caller)."""
        data = self._json(self._send("GET", PATH_KEY, None, REQUEST_TIMEOUT_SECONDS))
        try:
            return ServerKeys.from_json(data)
        except ProtocolError as err:
            raise ControlError(f"control's keys are malformed: {err}", transient=False,
                               code=err.code) from err

    def register(self, request: RegisterRequest) -> RegisterResponse:
        body = self._sealed(KIND_REGISTER, PATH_REGISTER, request.to_json(),
                            REQUEST_TIMEOUT_SECONDS)
        try:
            return RegisterResponse.from_json(body)
        except ProtocolError as err:
            raise ControlError(f"registration answer: {err}", transient=True,
                               code=err.code) from err

    def poll(self, since: int, wait: float = POLL_TIMEOUT_SECONDS, *,
             deltas: bool = False) -> PollResponse:
        """Long-poll for a netmap newer than `since` (the signed envelope is NOT verified);
        `deltas`: the node holds version `since` and may be answered with a delta."""
        body = self._sealed(KIND_POLL, PATH_POLL, PollRequest(since, deltas).to_json(),
                            wait + 15.0)
        try:
            return PollResponse.from_json(body)
        except ProtocolError as err:
            raise ControlError(f"poll answer: {err}", transient=True, code=err.code) from err

    # -- plumbing ----------------------------------------------------------------------

    def _sealed(self, kind: str, path: str, body: dict[str, Any],
                timeout: float) -> dict[str, Any]:
        if self.keys is None:
            raise ControlError("control's keys are not pinned yet", transient=False)
        sealed = seal_request(self.node_private, self.keys.box_key, kind, body)
        wire = self._json(self._send("POST", path, sealed.wire, timeout))
        try:
            return open_response(self.node_private, self.keys.box_key, wire, sealed, kind)
        except ProtocolError as err:
            # A forged, altered or replayed answer: someone between us and control.
            raise ControlError(f"answer from control refused: {err}", transient=True,
                               code=err.code) from err

    def _send(self, method: str, path: str, body: dict[str, Any] | None,
              timeout: float) -> Answer:
        try:
            with self._http.stream(method, self.server + path, json=body,
                                   timeout=httpx.Timeout(timeout,
                                                         connect=CONNECT_TIMEOUT_SECONDS)
                                   ) as response:
                status = response.status_code
                if status >= 500 or status == 429:
                    raise ControlError(f"control answered {status}", transient=True,
                                       code=f"http-{status}")
                limit = MAX_ERROR_BYTES if status >= 400 else self.max_response_bytes
                answer = Answer(status, _read(response, limit, path))
        except httpx.HTTPError as err:
            raise ControlError(f"control {self.server} unreachable: {err}", transient=True,
                               code="unreachable") from err
        if answer.status >= 400:
            code, detail = _error(answer)
            if code == "not-found":  # FastAPI's unknown route: not control's base URL
                detail += f" ({self.server}{path}: is --server control's base URL?)"
            raise ControlError(f"control refused: {answer.status} {code}: {detail}",
                               transient=False, code=code)
        return answer

    @staticmethod
    def _json(answer: Answer) -> dict[str, Any]:
        try:
            return parse_object(answer.content, "control's answer")
        except ProtocolError as err:
            raise ControlError(str(err), transient=True, code=err.code) from err


def _read(response: httpx.Response, limit: int, path: str) -> bytes:
    """The answer's body, or ControlError(too-large) once it is over `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(path, f"{int(declared):,} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(path, f"over {limit:,} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(path: str, size: str, limit: int) -> ControlError:
    # Transient: control's answer may shrink (a narrower policy, fewer peers), and the
    # agent keeps enforcing what it holds meanwhile; the limit is in the message so an
    # operator can tell a huge tailnet from a broken server.
    return ControlError(f"control's answer to {path} is too large: {size}, this agent "
                        f"reads at most {limit / MIB:g} MiB", transient=True, code=TOO_LARGE)


def _error(answer: Answer) -> tuple[str, str]:
    """Control's `{"error": code, "detail": text}`, or the status when it is not that."""
    fallback = f"http-{answer.status}"
    text = answer.content.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return fallback, text[:200]
    if not isinstance(data, dict):
        return fallback, str(data)[:200]
    code = data.get("error")
    return (code if isinstance(code, str) and code.isascii() and len(code) < 64 else fallback,
            str(data.get("detail", ""))[:500])
