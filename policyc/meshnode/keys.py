"""The node's WireGuard key: an X25519 pair made here, whose private half never leaves.

The private key is written once to `node.key` (0600) in WireGuard's base64 form,
so `wg set IF private-key FILE` reads it straight from the file: its bytes never
pass through a command line, an environment variable or a log. Only the public key
is ever sent to control, and it is this node's identity there.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey

from policyc.meshnode.state import StateDir, StateError, atomic_write
from policyc.protocol import ProtocolError, ServerKeys

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class NodeKey:
    """Where the private key lives and the public key it gives (base64)."""

    private_key_file: Path
    public_key: str

    def private(self) -> PrivateKey:
        """The private key itself, for boxing requests to control (in memory only)."""
        return PrivateKey(_read_key_file(self.private_key_file))


def load_or_create_node_key(state: StateDir) -> tuple[NodeKey, bool]:
    """The node key from DIR, making and storing a new one the first time.

    Returns the key and whether it was just created.
    """
    path = state.node_key
    created = False
    if not path.exists():
        fresh = PrivateKey.generate()
        atomic_write(path, base64.b64encode(bytes(fresh)) + b"\n")
        created = True
    private = PrivateKey(_read_key_file(path))
    public = base64.b64encode(bytes(private.public_key)).decode()
    return NodeKey(path, public), created


def _read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise StateError(f"cannot read node key {path}: {err.strerror or err}") from err
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise StateError(f"node key {path} is not base64") from err
    if len(raw) != KEY_BYTES:
        raise StateError(f"node key {path} is {len(raw)} bytes, not {KEY_BYTES}")
    if path.stat().st_mode & 0o077:
        raise StateError(f"node key {path} is readable by others; refusing to use it")
    return raw


# --- control's keys, pinned at the first join ----------------------------------------


def load_pinned_control_keys(state: StateDir) -> ServerKeys | None:
    """Control's keys as pinned in DIR, or None before the first join."""
    data = state.read_json(state.control_keys)
    if data is None:
        return None
    try:
        return ServerKeys.from_json(data)
    except (ProtocolError, AttributeError) as err:
        raise StateError(f"{state.control_keys} does not hold control's keys: {err}") from err


def pin_control_keys(state: StateDir, offered: ServerKeys, expected_signing_key: str | None,
                     ) -> ServerKeys:
    """Pin what control offered at the first join; refuse a key other than `expected`.

    After this, every netmap must be signed by `offered.signing_key` and every
    request goes to `offered.box_key`; a control presenting other keys later is
    an impostor (or a re-keyed control, which needs the operator to re-pin).
    """
    if expected_signing_key is not None and offered.signing_key != expected_signing_key:
        raise StateError("control's signing key is not the one given with --control-key; "
                         "refusing to join")
    state.write_json(state.control_keys, offered.to_json())
    return offered
