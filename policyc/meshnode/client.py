"""Talking to control: every request boxed with the node key, every answer opened.

Control's paths are the only HTTP detail the agent knows. `ControlError` says
whether a failure is the network (retry with backoff: control may come back) or a
refusal (control answered no: a bad auth key will not get better by retrying).
"""

from __future__ import annotations

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
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class ControlError(Exception):
    """A request to control failed. `transient`: worth retrying later."""

    def __init__(self, message: str, *, transient: bool, code: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


@dataclass
class ControlClient:
    server: str  # base URL, e.g. http://127.0.0.1:8080
    node_private: PrivateKey
    keys: ServerKeys | None = None  # control's pinned keys; None until the first join

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
              timeout: float) -> httpx.Response:
        try:
            response = self._http.request(method, self.server + path, json=body,
                                          timeout=httpx.Timeout(timeout,
                                                                connect=CONNECT_TIMEOUT_SECONDS))
        except httpx.HTTPError as err:
            raise ControlError(f"control {self.server} unreachable: {err}", transient=True,
                               code="unreachable") from err
        if response.status_code >= 500 or response.status_code == 429:
            raise ControlError(f"control answered {response.status_code}", transient=True,
                               code=f"http-{response.status_code}")
        if response.status_code >= 400:
            code, detail = _error(response)
            if code == "not-found":  # FastAPI's unknown route: not control's base URL
                detail += f" ({self.server}{path}: is --server control's base URL?)"
            raise ControlError(f"control refused: {response.status_code} {code}: {detail}",
                               transient=False, code=code)
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise ControlError("control's answer is too large", transient=True, code="too-large")
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            return parse_object(response.content, "control's answer")
        except ProtocolError as err:
            raise ControlError(str(err), transient=True, code=err.code) from err


def _error(response: httpx.Response) -> tuple[str, str]:
    """Control's `{"error": code, "detail": text}`, or the status when it is not that."""
    fallback = f"http-{response.status_code}"
    try:
        data = response.json()
    except ValueError:
        return fallback, response.text[:200]
    if not isinstance(data, dict):
        return fallback, str(data)[:200]
    code = data.get("error")
    return (code if isinstance(code, str) and code.isascii() and len(code) < 64 else fallback,
            str(data.get("detail", ""))[:500])
