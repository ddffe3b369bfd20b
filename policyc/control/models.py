"""Request and response bodies of the HTTP API (pydantic, so they are the
OpenAPI document the tests fuzz). Lengths are bounded here, before any
handler runs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Short = Annotated[str, Field(max_length=256)]
Tag = Annotated[str, Field(max_length=80)]
Route = Annotated[str, Field(max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="stable, machine-matched code")
    detail: str
    diagnostics: list[dict[str, Any]] | None = None


class ServerKeysBody(BaseModel):
    signing_key: str = Field(description="base64 Ed25519 key that signs netmap envelopes")
    box_key: str = Field(description="base64 X25519 key node requests are boxed to")
    protocol: int


KEY_PATTERN = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"  # canonical base64 of 32 bytes
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class SealedRequestBody(Strict):
    node_key: str = Field(max_length=44, pattern=KEY_PATTERN,
                          description="base64 X25519 public key of the node (its WireGuard key)")
    nonce: str = Field(max_length=32, min_length=32, pattern=r"^[A-Za-z0-9+/]{32}$",
                       description="base64 of the 24-byte box nonce")
    box: str = Field(max_length=90_000, pattern=BASE64_PATTERN,
                     description="base64 NaCl box of {kind, ts_ms, body}")


class SealedResponseBody(BaseModel):
    nonce: str
    box: str


class PolicyBody(BaseModel):
    version: int
    etag: str
    policy: str
    created_at: int
    note: str


class PolicyPut(Strict):
    # Bounded by the route's body limit; over MAX_POLICY_BYTES it is a 413 (limits.py).
    policy: str = Field(description="HuJSON policy text, at most 32 MiB of UTF-8")


class PolicyStored(BaseModel):
    version: int
    etag: str
    changed: bool = Field(description="false: the text equals the live policy")
    netmaps_changed: int = Field(description="nodes that were sent a new netmap")


class HistoryEntry(BaseModel):
    version: int
    etag: str
    created_at: int
    note: str


class HistoryBody(BaseModel):
    versions: list[HistoryEntry]


class RollbackBody(Strict):
    version: int = Field(ge=1, le=1 << 62)


class AuthKeyCreate(Strict):
    user: Short | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    reusable: bool = False
    expires_in: int | None = Field(default=None, ge=1, le=10 * 365 * 86400,
                                   description="seconds until the key expires")


class AuthKeyBody(BaseModel):
    key: str = Field(description="shown once; only its digest is stored")
    id: int
    user: str | None
    tags: list[str]
    reusable: bool
    expires_at: int | None


class AuthKeyInfo(BaseModel):
    id: int
    prefix: str = Field(description="the key's first characters, to recognise it")
    user: str | None
    tags: list[str]
    reusable: bool
    expires_at: int | None
    uses: int
    created_at: int
    revoked_at: int | None
    state: str = Field(description="valid, used, expired or revoked")


class AuthKeysBody(BaseModel):
    keys: list[AuthKeyInfo]


class TokenBody(BaseModel):
    token: str = Field(description="the new admin token, shown once; the old one is void")


class AuditEntryBody(BaseModel):
    id: int
    at: int
    actor: str = Field(description="admin:<token fingerprint>, node:<key prefix>, control, "
                       "or local (offline token rotation)")
    action: str
    target: str
    detail: dict[str, Any]


class AuditBody(BaseModel):
    entries: list[AuditEntryBody] = Field(description="newest first")


class NodeBody(BaseModel):
    name: str
    user: str | None
    tags: list[str]
    ips: list[str]
    key: str
    routes: list[str]
    exit_node: bool
    endpoint: str | None
    advertised_routes: list[str]
    approved_routes: list[str]
    created_at: int
    expires_at: int | None
    expired: bool
    netmap_version: int
    invalid_tags: list[str] = Field(description="tags the live policy no longer defines; "
                                    "kept on the node, granting nothing")


class NodesBody(BaseModel):
    nodes: list[NodeBody]


class RoutesBody(Strict):
    routes: list[Route] = Field(max_length=64)


class RemovedBody(BaseModel):
    removed: str
