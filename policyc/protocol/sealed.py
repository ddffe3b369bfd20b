"""Node requests boxed to control, and control's answers boxed back.

A request is `{"node_key", "nonce", "box"}`: the plaintext
`{"kind", "ts_ms", "body"}` encrypted with NaCl `Box(node_private,
control_box_public)`. Opening it with `Box(control_private, node_key)`
succeeds only if the sender holds the private key of `node_key` (or
control's), so a node proves its identity without ever sending its key.
`kind` binds the body to one endpoint; `ts_ms` and the nonce defeat replay
(`ReplayGuard`). The answer `{"nonce", "box"}` carries `{"kind", "re",
"body"}` where `re` is the request's nonce, so a node never accepts an old
answer to a new question, and nobody but the node can read it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.utils
from nacl.public import Box, PrivateKey, PublicKey

from policyc.protocol.codec import (
    NONCE_BYTES,
    ProtocolError,
    b64decode,
    b64encode,
    base64_chars,
    canonical_json,
    decode_key,
    field,
    parse_object,
)

REPLAY_WINDOW_SECONDS = 120.0  # how far a request's clock may be from control's
MAX_SEALED_BYTES = 64 * 1024  # no node request needs more


@dataclass(frozen=True, slots=True)
class OpenedRequest:
    """A request whose sender proved it holds the private key of `node_key`."""

    node_key: str  # base64 X25519 public key (the node's WireGuard key)
    kind: str
    body: dict[str, Any]
    nonce: bytes  # the answer is bound to it (see seal_response)


@dataclass(frozen=True, slots=True)
class SealedRequest:
    """What a node keeps to read the answer: the wire body and its nonce."""

    wire: dict[str, str]
    nonce: bytes


def private_key(key: PrivateKey | str) -> PrivateKey:
    return key if isinstance(key, PrivateKey) else PrivateKey(decode_key(key, "private key"))


def public_key_text(key: PrivateKey | str) -> str:
    """The base64 public key of a private key (a node's WireGuard public key)."""
    return b64encode(bytes(private_key(key).public_key))


def seal_request(node_private: PrivateKey | str, control_box_key: str, kind: str,
                 body: dict[str, Any], *, now: float | None = None) -> SealedRequest:
    sender = private_key(node_private)
    box = Box(sender, PublicKey(decode_key(control_box_key, "control box key")))
    nonce = nacl.utils.random(NONCE_BYTES)
    ts_ms = int((time.time() if now is None else now) * 1000)
    plaintext = canonical_json({"kind": kind, "ts_ms": ts_ms, "body": body})
    sealed = box.encrypt(plaintext, nonce).ciphertext
    wire = {"node_key": b64encode(bytes(sender.public_key)), "nonce": b64encode(nonce),
            "box": b64encode(sealed)}
    return SealedRequest(wire, nonce)


class BoxCache:
    """Control's NaCl Box with each node key, made once per key.

    A Box costs an X25519 scalar multiplication; a long-poll needs one to open the
    request and one to seal the answer, and a push answers a thousand polls on the
    event loop at once. Bounded (least recently used out), so keys a stranger makes
    up cost memory only up to `size`.
    """

    def __init__(self, control_private: PrivateKey, size: int = 16384) -> None:
        self.control_private = control_private
        self.size = size
        self._boxes: OrderedDict[bytes, Box] = OrderedDict()
        self._lock = threading.Lock()

    def box(self, node_key: bytes) -> Box:
        with self._lock:
            box = self._boxes.get(node_key)
            if box is not None:
                self._boxes.move_to_end(node_key)
                return box
        box = Box(self.control_private, PublicKey(node_key))
        with self._lock:
            self._boxes[node_key] = box
            while len(self._boxes) > self.size:
                self._boxes.popitem(last=False)
        return box


def _control_box(control: PrivateKey | BoxCache, node_key: bytes) -> Box:
    if isinstance(control, BoxCache):
        return control.box(node_key)
    return Box(control, PublicKey(node_key))


class ReplayGuard:
    """Refuses a request whose timestamp is out of the window or whose nonce was seen.

    Nonces are remembered until their timestamp leaves the window, so memory
    is bounded by the request rate. `not_before` (control's start time)
    refuses requests made before a restart, whose nonces this process never
    saw: a node whose clock lags retries after at most its lag.
    """

    def __init__(self, window: float = REPLAY_WINDOW_SECONDS,
                 not_before: float | None = None) -> None:
        self.window = window
        self.not_before_ms = int((time.time() if not_before is None else not_before) * 1000)
        self._seen: set[tuple[str, bytes]] = set()
        self._expiry: list[tuple[int, str, bytes]] = []
        self._lock = threading.Lock()

    def check(self, node_key: str, nonce: bytes, ts_ms: int, now: float | None = None) -> None:
        now_ms = int((time.time() if now is None else now) * 1000)
        window_ms = int(self.window * 1000)
        if abs(now_ms - ts_ms) > window_ms:
            raise ProtocolError("stale", "request timestamp is outside the accepted window "
                                "(check the node's clock)")
        if ts_ms < self.not_before_ms:
            raise ProtocolError("stale", "request predates this control process; retry")
        with self._lock:
            while self._expiry and self._expiry[0][0] < now_ms:
                _, key, old = heapq.heappop(self._expiry)
                self._seen.discard((key, old))
            if (node_key, nonce) in self._seen:
                raise ProtocolError("replay", "request nonce was already used")
            self._seen.add((node_key, nonce))
            heapq.heappush(self._expiry, (ts_ms + window_ms, node_key, nonce))

    def __len__(self) -> int:
        return len(self._seen)


def open_request(control_private: PrivateKey | BoxCache, wire: object, kind: str,
                 guard: ReplayGuard, *, now: float | None = None) -> OpenedRequest:
    """Authenticate and decrypt a node request for endpoint `kind`."""
    if not isinstance(wire, dict):
        raise ProtocolError("bad-message", "a sealed request must be a JSON object")
    what = "sealed request"
    node_key = field(wire, "node_key", str, what)
    sender = decode_key(node_key, "node_key")
    nonce = b64decode(field(wire, "nonce", str, what), "nonce", NONCE_BYTES)
    box = field(wire, "box", str, what)
    if len(box) > base64_chars(MAX_SEALED_BYTES):  # before decoding it
        raise ProtocolError("too-large", "sealed request is too large")
    sealed = b64decode(box, "box")
    try:
        plaintext = _control_box(control_private, sender).decrypt(sealed, nonce)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise ProtocolError("bad-box", "request is not sealed by the key it names") from None
    inner = parse_object(plaintext, "sealed plaintext")
    if field(inner, "kind", str, what) != kind:
        raise ProtocolError("wrong-kind", f"request was sealed for another endpoint, not {kind}")
    ts_ms = field(inner, "ts_ms", int, what)
    body = field(inner, "body", dict, what)
    guard.check(node_key, nonce, ts_ms, now)
    return OpenedRequest(node_key, kind, body, nonce)


def seal_response(control_private: PrivateKey | BoxCache, request: OpenedRequest,
                  body: dict[str, Any]) -> dict[str, str]:
    box = _control_box(control_private, decode_key(request.node_key, "node_key"))
    nonce = nacl.utils.random(NONCE_BYTES)
    plaintext = canonical_json({"kind": request.kind, "re": b64encode(request.nonce),
                                "body": body})
    return {"nonce": b64encode(nonce), "box": b64encode(box.encrypt(plaintext, nonce).ciphertext)}


def open_response(node_private: PrivateKey | str, control_box_key: str, wire: object,
                  request: SealedRequest, kind: str) -> dict[str, Any]:
    """The body of control's answer to `request`; ProtocolError if it is not that answer."""
    if not isinstance(wire, dict):
        raise ProtocolError("bad-message", "a sealed response must be a JSON object")
    what = "sealed response"
    nonce = b64decode(field(wire, "nonce", str, what), "nonce", NONCE_BYTES)
    sealed = b64decode(field(wire, "box", str, what), "box")
    box = Box(private_key(node_private), PublicKey(decode_key(control_box_key, "control key")))
    try:
        plaintext = box.decrypt(sealed, nonce)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise ProtocolError("bad-box", "response is not sealed by control's key") from None
    inner = parse_object(plaintext, "sealed plaintext")
    if field(inner, "kind", str, what) != kind or \
            field(inner, "re", str, what) != b64encode(request.nonce):
        raise ProtocolError("wrong-answer", "response does not answer this request")
    body: dict[str, Any] = field(inner, "body", dict, what)
    return body
