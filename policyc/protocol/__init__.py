"""What control and nodes say to each other, and nothing else.

The control server (`policyc.control`) and the node agent (`policyc.meshnode`)
never import each other; they meet here, on the wire:

- `codec`: strict base64 keys, canonical JSON, `ProtocolError`.
- `messages`: the typed request/response bodies (register, poll, server keys).
- `sealed`: NaCl boxes that authenticate a node request by proof of the node's
  private key, with a timestamp and nonce against replay; responses are boxed
  back to the node and bound to the request they answer.
- `envelope`: Ed25519-signed netmap envelopes and `verify_netmap`, which a node
  calls before it enforces anything.
- `removal`: Ed25519-signed removal notices and `verify_removal`: a node leaves
  the tailnet only on one of these, never on a bare HTTP refusal.
- `delta`: Ed25519-signed netmap deltas from one version to the next, which a
  node verifies (`verify_delta`) and applies onto the netmap it holds
  (`apply_delta`); the result is the full netmap control would send.
"""

from policyc.protocol.codec import ProtocolError
from policyc.protocol.envelope import NetmapEnvelope, PeerOwner, sign_netmap, verify_netmap
from policyc.protocol.messages import (
    PollRequest,
    PollResponse,
    RegisterRequest,
    RegisterResponse,
    ServerKeys,
)
from policyc.protocol.removal import RemovalNotice, sign_removal, verify_removal
from policyc.protocol.sealed import (
    OpenedRequest,
    ReplayGuard,
    open_request,
    open_response,
    seal_request,
    seal_response,
)

__all__ = [
    "NetmapEnvelope",
    "OpenedRequest",
    "PeerOwner",
    "PollRequest",
    "PollResponse",
    "ProtocolError",
    "RegisterRequest",
    "RegisterResponse",
    "RemovalNotice",
    "ReplayGuard",
    "ServerKeys",
    "open_request",
    "open_response",
    "seal_request",
    "seal_response",
    "sign_netmap",
    "sign_removal",
    "verify_netmap",
    "verify_removal",
]
