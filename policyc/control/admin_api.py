"""Admin routes (`/api/v1/...`): policy, history, rollback, pre-auth keys, nodes.

All of them need the admin token (the `admin` dependency). Writers are
plain `def` handlers, so FastAPI runs them on worker threads and the event
loop keeps answering long-polls while a policy compiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response

from policyc.control.errors import ControlError
from policyc.control.models import (
    AuditBody,
    AuthKeyBody,
    AuthKeyCreate,
    AuthKeyInfo,
    AuthKeysBody,
    HistoryBody,
    NodeBody,
    NodesBody,
    PolicyBody,
    PolicyPut,
    PolicyStored,
    RemovedBody,
    RollbackBody,
    RoutesBody,
    TokenBody,
)
from policyc.control.operations import (
    approve_routes,
    create_auth_key,
    remove_node,
    revoke_auth_key,
    rotate_admin_token,
)
from policyc.control.registry import node_json
from policyc.control.store import AuthKeyRecord, StoredPolicy
from policyc.control.tailnet import PolicyResult, Tailnet

NodeName = Annotated[str, Path(max_length=63, pattern=r"^[a-z0-9-]+$")]


def router(tailnet: Tailnet, admin: Callable[..., str],
           errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    """`admin` checks the token and returns the actor the audit log names."""
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(admin)], responses=errors,
                    tags=["admin"])
    actor_of = Depends(admin)  # the same call as the router's (FastAPI caches it)

    def policy_body(stored: StoredPolicy, response: Response) -> dict[str, Any]:
        response.headers["ETag"] = f'"{stored.etag}"'
        return {"version": stored.version, "etag": stored.etag, "policy": stored.text,
                "created_at": stored.created_at, "note": stored.note}

    @api.get("/policy", response_model=PolicyBody)
    def get_policy(response: Response) -> dict[str, Any]:
        """The live policy; its ETag goes into If-Match of the next PUT."""
        return policy_body(tailnet.view.live, response)

    @api.put("/policy", response_model=PolicyStored)
    def put_policy(body: PolicyPut, response: Response,
                   if_match: Annotated[str | None, Header(max_length=200)] = None,
                   actor: str = actor_of) -> dict[str, Any]:
        """Validate, run the policy's tests against the registered nodes, then store."""
        return stored_body(tailnet.put_policy(body.policy, if_match, "put", actor=actor),
                           response)

    @api.get("/policy/history", response_model=HistoryBody)
    def policy_history() -> dict[str, Any]:
        return {"versions": [{"version": p.version, "etag": p.etag, "created_at": p.created_at,
                              "note": p.note} for p in tailnet.store.policy_history()]}

    @api.get("/policy/versions/{version}", response_model=PolicyBody)
    def policy_version(version: Annotated[int, Path(ge=1, le=1 << 62)],
                       response: Response) -> dict[str, Any]:
        stored = tailnet.store.policy(version)
        if stored is None:
            raise ControlError(404, "unknown-version", f"there is no policy version {version}")
        return policy_body(stored, response)

    @api.post("/policy/rollback", response_model=PolicyStored)
    def rollback(body: RollbackBody, response: Response,
                 actor: str = actor_of) -> dict[str, Any]:
        """Make an old version live again (as a new version; its tests run again)."""
        return stored_body(tailnet.rollback(body.version, actor=actor), response)

    @api.post("/authkeys", response_model=AuthKeyBody)
    def new_auth_key(body: AuthKeyCreate, actor: str = actor_of) -> dict[str, Any]:
        key, record = create_auth_key(tailnet, body.user, body.tags, body.reusable,
                                      body.expires_in, actor=actor)
        return {"key": key, "id": record.id, "user": record.user, "tags": list(record.tags),
                "reusable": record.reusable, "expires_at": record.expires_at}

    @api.get("/authkeys", response_model=AuthKeysBody)
    def list_auth_keys() -> dict[str, Any]:
        """Every pre-auth key ever made, without the key (only its prefix)."""
        now = tailnet.clock()
        return {"keys": [auth_key_json(k, now) for k in tailnet.store.auth_keys()]}

    @api.delete("/authkeys/{key_id}", response_model=AuthKeyInfo)
    def delete_auth_key(key_id: Annotated[int, Path(ge=1, le=1 << 62)],
                        actor: str = actor_of) -> dict[str, Any]:
        """Revoke a key: registrations with it are refused (its nodes stay)."""
        return auth_key_json(revoke_auth_key(tailnet, key_id, actor=actor), tailnet.clock())

    @api.post("/token/rotate", response_model=TokenBody)
    def rotate_token(actor: str = actor_of) -> dict[str, Any]:
        """A new admin token (shown once, also written to DIR/admin.token); the one
        that made this request stops working now."""
        return {"token": rotate_admin_token(tailnet, actor=actor)}

    @api.get("/audit", response_model=AuditBody)
    def audit(limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              before: Annotated[int | None, Query(ge=1, le=1 << 62)] = None,
              ) -> dict[str, Any]:
        """Who changed what, newest first (`before`: page with the last id you saw)."""
        return {"entries": [e.to_json() for e in tailnet.store.audit(limit, before)]}

    @api.get("/nodes", response_model=NodesBody)
    def list_nodes() -> dict[str, Any]:
        now = tailnet.clock()
        return {"nodes": [node_json(r, now, tailnet.view.policy.tag_owners) for r in
                          sorted(tailnet.view.records.values(), key=lambda r: r.id)]}

    @api.delete("/nodes/{name}", response_model=RemovedBody)
    def delete_node(name: NodeName, actor: str = actor_of) -> dict[str, Any]:
        """Remove a node: its key leaves every peer's netmap."""
        remove_node(tailnet, name, actor=actor)
        return {"removed": name}

    @api.post("/nodes/{name}/routes", response_model=NodeBody)
    def set_routes(name: NodeName, body: RoutesBody, actor: str = actor_of) -> dict[str, Any]:
        """Approve exactly these advertised routes (0.0.0.0/0 + ::/0: exit node)."""
        return node_json(approve_routes(tailnet, name, body.routes, actor=actor),
                         tailnet.clock(), tailnet.view.policy.tag_owners)

    return api


def stored_body(result: PolicyResult, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = f'"{result.live.etag}"'
    return {"version": result.live.version, "etag": result.live.etag,
            "changed": result.changed, "netmaps_changed": result.netmaps_changed}


def auth_key_json(key: AuthKeyRecord, now: float) -> dict[str, Any]:
    return {"id": key.id, "prefix": key.prefix, "user": key.user, "tags": list(key.tags),
            "reusable": key.reusable, "expires_at": key.expires_at, "uses": key.uses,
            "created_at": key.created_at, "revoked_at": key.revoked_at,
            "state": key.state(now)}
