"""Wire encodings shared by every protocol message.

Everything that arrives from the network is hostile until these functions
have checked it: base64 must be canonical and of the expected length, JSON
must be an object, and every failure is one `ProtocolError` with a stable
code (never a traceback, never a 5xx).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

KEY_BYTES = 32  # X25519 and Ed25519 public keys, X25519 private keys
NONCE_BYTES = 24  # NaCl box nonce
SIGNATURE_BYTES = 64  # Ed25519


class ProtocolError(ValueError):
    """A message that is malformed, forged, replayed or otherwise refused.

    `code` is stable (tests and clients match on it); `message` is for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, what: str, length: int | None = None) -> bytes:
    """Strict standard base64 of exactly `length` bytes (when given).

    No size limit of its own: what reaches it was bounded by whoever read it off the
    wire (control's request body limit, the agent's answer limit). A fixed cap here
    (it was 4 MiB of text) refused every full netmap of a ~2k-node dense tailnet."""
    if not isinstance(text, str):
        raise ProtocolError("bad-encoding", f"{what} must be a base64 string")
    if length is not None and len(text) != base64_chars(length):
        raise ProtocolError("bad-encoding", f"{what} must be {length} bytes of base64")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ProtocolError("bad-encoding", f"{what} is not valid base64") from None
    if length is not None and len(data) != length:
        raise ProtocolError("bad-encoding", f"{what} must be {length} bytes, not {len(data)}")
    if b64encode(data) != text:
        raise ProtocolError("bad-encoding", f"{what} is not canonical base64")
    return data


def base64_chars(size: int) -> int:
    """The length of the padded base64 of `size` bytes."""
    return 4 * ((size + 2) // 3)


def decode_key(text: object, what: str = "key") -> bytes:
    return b64decode(text, what, KEY_BYTES)


def canonical_json(value: Any) -> bytes:
    """The one byte string a JSON value signs and hashes as (sorted keys, no spaces, UTF-8).

    orjson: a netmap envelope is tens of kilobytes and a policy push signs one
    per node, so the stdlib encoder's cost showed up in push latency.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def parse_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except (UnicodeDecodeError, orjson.JSONDecodeError, RecursionError):
        raise ProtocolError("bad-json", f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("bad-json", f"{what} must be a JSON object")
    return value


def field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """obj[name], which must exist and be of `kind` (bool is never an int here)."""
    if name not in obj:
        raise ProtocolError("bad-message", f"{what}: missing field {name!r}")
    value = obj[name]
    wanted = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in wanted:
        raise ProtocolError("bad-message", f"{what}: field {name!r} has the wrong type")
    if not isinstance(value, wanted):
        raise ProtocolError("bad-message", f"{what}: field {name!r} has the wrong type")
    return value


def string_list(obj: Mapping[str, Any], name: str, what: str, limit: int = 256,
                ) -> tuple[str, ...]:
    """An optional list of strings (absent means empty), at most `limit` long."""
    value = obj.get(name, [])
    if not isinstance(value, list) or len(value) > limit or \
            not all(isinstance(v, str) and len(v) <= 256 for v in value):
        raise ProtocolError("bad-message", f"{what}: {name!r} must be a list of strings")
    return tuple(value)
