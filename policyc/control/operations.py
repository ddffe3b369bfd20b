"""Registry changes: joins, pre-auth keys, removals and route approvals.

Each validates its input completely before it opens a transaction (a
refused request changes nothing), then runs through `Tailnet.change`, so
the node's peers get their new netmaps in the same commit.
"""

from __future__ import annotations

from dataclasses import replace

from policyc.control.errors import ControlError
from policyc.control.policies import user_owns_tag
from policyc.control.registry import (
    addresses,
    auth_key_digest,
    check_login,
    check_tags,
    new_auth_key,
    node_name,
    parse_endpoint,
    parse_routes,
)
from policyc.control.statedir import ADMIN_TOKEN, new_admin_token, replace_secret, token_digest
from policyc.control.store import AuthKeyRecord, NodeRecord, StoredPolicy
from policyc.control.tailnet import CONTROL_ACTOR, Tailnet, View, node_actor
from policyc.policy.model import Policy
from policyc.protocol.messages import RegisterRequest, RegisterResponse

Written = tuple[StoredPolicy, Policy, dict[str, NodeRecord]]


def create_auth_key(tailnet: Tailnet, user: str | None, tags: list[str], reusable: bool,
                    expires_in: int | None, *, actor: str = CONTROL_ACTOR,
                    ) -> tuple[str, AuthKeyRecord]:
    """A new pre-auth key (returned once; only its digest is stored)."""
    if user is None and not tags:
        raise ControlError(400, "bad-auth-key", "a key needs a user or at least one tag")
    login = None if user is None else check_login(user)
    wanted = check_tags(tags)
    policy = tailnet.view.policy
    _check_key_tags(policy, login, wanted)
    key = new_auth_key()
    now = int(tailnet.clock())
    with tailnet.lock, tailnet.store.transaction():
        record = AuthKeyRecord(
            id=tailnet.store.next_counter("auth_key_id"), key_hash=auth_key_digest(key),
            prefix=key[:10], user=login, tags=wanted, reusable=reusable,
            expires_at=None if expires_in is None else now + expires_in, uses=0, created_at=now)
        tailnet.store.add_auth_key(record)
        tailnet.store.add_audit(now, actor, "authkey.create", f"key {record.id}", {
            "prefix": record.prefix, "user": login, "tags": list(wanted), "reusable": reusable,
            "expires_at": record.expires_at})
    return key, record


def revoke_auth_key(tailnet: Tailnet, key_id: int, *, actor: str = CONTROL_ACTOR,
                    ) -> AuthKeyRecord:
    """Refuse the key from now on (nodes it registered stay; remove them separately)."""
    now = int(tailnet.clock())
    with tailnet.lock, tailnet.store.transaction():
        record = tailnet.store.auth_key(key_id)
        if record is None:
            raise ControlError(404, "unknown-auth-key", f"there is no pre-auth key {key_id}")
        if record.revoked_at is None:
            tailnet.store.revoke_auth_key(key_id, now)
            tailnet.store.add_audit(now, actor, "authkey.revoke", f"key {key_id}",
                                    {"prefix": record.prefix})
        revoked = tailnet.store.auth_key(key_id)
    assert revoked is not None
    return revoked


def _check_key_tags(policy: Policy, user: str | None, tags: tuple[str, ...]) -> None:
    for tag in tags:
        if tag not in policy.tag_owners:
            raise ControlError(403, "tag-undefined",
                               f"{tag} is not defined in the live policy's tagOwners")
        if user is not None and not user_owns_tag(policy, tag, user):
            raise ControlError(403, "tag-not-owned", f"{user} does not own {tag} in tagOwners")


def register(tailnet: Tailnet, node_key: str, request: RegisterRequest,
             node_expiry: int | None) -> RegisterResponse:
    """Join `node_key` (already proven by its box) with a pre-auth key.

    A node key that is registered and not expired gets its registration back
    without using the key, so an agent can safely retry; if it asks with other
    routes or another endpoint (its agent restarted with other flags), those are
    taken first (`_update_registration`).
    """
    routes = parse_routes(request.routes)
    endpoint = parse_endpoint(request.endpoint)
    existing = tailnet.store.node_by_key(node_key)
    now = int(tailnet.clock())
    if existing is not None and not existing.expired(now):
        if existing.endpoint == endpoint and set(existing.advertised_routes) == set(routes):
            return _response(existing)
        return _response(_update_registration(tailnet, node_key, routes, endpoint))
    digest = auth_key_digest(request.auth_key)

    def write(view: View) -> Written:
        key = tailnet.store.auth_key_by_hash(digest)
        if key is None:
            raise ControlError(403, "auth-key-unknown", "this pre-auth key is not known")
        if key.expires_at is not None and key.expires_at <= now:
            raise ControlError(403, "auth-key-expired", "this pre-auth key has expired")
        if key.revoked_at is not None:
            raise ControlError(403, "auth-key-revoked", "this pre-auth key was revoked")
        if key.uses and not key.reusable:
            raise ControlError(403, "auth-key-used", "this single-use pre-auth key was used")
        _check_key_tags(view.policy, key.user, key.tags)  # the policy may have changed since
        tailnet.store.use_auth_key(key.id)
        records = dict(view.records)
        again = tailnet.store.node_by_key(node_key)
        # As in Tailscale, a tagged node (a server) has no key expiry by default.
        expires_at = None if node_expiry is None or key.tags else now + node_expiry
        if again is not None:  # an expired node comes back with its name and addresses
            record = replace(again, user=key.user, tags=key.tags, advertised_routes=routes,
                             approved_routes=tuple(r for r in again.approved_routes
                                                   if r in routes),
                             endpoint=endpoint, expires_at=expires_at)
            tailnet.store.update_node(record)
        else:
            ipv4, ipv6 = addresses(tailnet.store.next_counter("node_address"))
            record = NodeRecord(
                id=tailnet.store.next_counter("node_id"), name=_unique_name(tailnet,
                                                                            request.hostname),
                node_key=node_key, user=key.user, tags=key.tags, ipv4=ipv4, ipv6=ipv6,
                advertised_routes=routes, approved_routes=(), endpoint=endpoint,
                created_at=now, expires_at=expires_at, netmap_version=0, netmap_digest="")
            tailnet.store.add_node(record)
        tailnet.store.add_audit(now, node_actor(node_key), "node.register", record.name, {
            "auth_key": key.id, "user": key.user, "tags": list(key.tags),
            "again": again is not None})
        records[record.name] = record
        return view.live, view.policy, records

    tailnet.change(write)
    joined = tailnet.store.node_by_key(node_key)
    if joined is None:  # an admin removed it between the commit and this read
        raise ControlError(409, "removed", "the node was removed while it registered")
    return _response(joined)


def _update_registration(tailnet: Tailnet, node_key: str, routes: tuple[str, ...],
                         endpoint: str | None) -> NodeRecord:
    """A registered node advertises other routes or another endpoint. Routes approved
    before stay approved while it still advertises them; new ones wait for approval."""
    def write(view: View) -> Written:
        record = tailnet.store.node_by_key(node_key)
        if record is None:  # an admin removed it meanwhile
            raise ControlError(409, "removed", "the node was removed while it registered")
        record = replace(record, advertised_routes=routes, endpoint=endpoint,
                         approved_routes=tuple(r for r in record.approved_routes
                                               if r in routes))
        tailnet.store.update_node(record)
        tailnet.store.add_audit(int(tailnet.clock()), node_actor(node_key), "node.update",
                                record.name, {"routes": list(routes), "endpoint": endpoint})
        records = dict(view.records)
        records[record.name] = record
        return view.live, view.policy, records

    tailnet.change(write)
    updated = tailnet.store.node_by_key(node_key)
    if updated is None:
        raise ControlError(409, "removed", "the node was removed while it registered")
    return updated


def _unique_name(tailnet: Tailnet, hostname: str) -> str:
    base = node_name(hostname)
    name, suffix = base, 1
    while tailnet.store.name_taken(name):
        suffix += 1
        name = f"{base}-{suffix}"
    return name


def _response(record: NodeRecord) -> RegisterResponse:
    return RegisterResponse(record.name, (record.ipv4, record.ipv6), record.user, record.tags)


def remove_node(tailnet: Tailnet, name: str, *, actor: str = CONTROL_ACTOR) -> None:
    def write(view: View) -> Written:
        if not tailnet.store.delete_node(name):
            raise ControlError(404, "unknown-node", f"there is no node {name!r}")
        tailnet.store.add_audit(int(tailnet.clock()), actor, "node.remove", name, {})
        records = dict(view.records)
        records.pop(name, None)
        return view.live, view.policy, records

    tailnet.change(write)


def approve_routes(tailnet: Tailnet, name: str, routes: list[str], *,
                   actor: str = CONTROL_ACTOR) -> NodeRecord:
    """Set the node's approved routes to exactly `routes` (each must be advertised)."""
    wanted = parse_routes(routes)

    def write(view: View) -> Written:
        record = tailnet.store.node_by_name(name)
        if record is None:
            raise ControlError(404, "unknown-node", f"there is no node {name!r}")
        missing = [r for r in wanted if r not in record.advertised_routes]
        if missing:
            raise ControlError(400, "route-not-advertised",
                               f"{name} does not advertise {missing[0]}")
        record = replace(record, approved_routes=wanted)
        tailnet.store.update_node(record)
        tailnet.store.add_audit(int(tailnet.clock()), actor, "node.routes", name,
                                {"approved": list(wanted)})
        records = dict(view.records)
        records[name] = record
        return view.live, view.policy, records

    tailnet.change(write)
    return tailnet.view.records[name]


def rotate_admin_token(tailnet: Tailnet, *, actor: str = CONTROL_ACTOR) -> str:
    """A new admin token: committed (with its audit entry), then written over
    DIR/admin.token. Returned once; the previous token stops working at the commit."""
    token = new_admin_token()
    tailnet.rotate_admin_token(token_digest(token), actor=actor)
    replace_secret(tailnet.store.path.parent / ADMIN_TOKEN, token + "\n")
    return token
