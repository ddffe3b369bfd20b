"""The tailnet as control holds it: live policy, registered nodes, signed netmaps.

Every change (policy push, join, removal, route approval, expiry) runs the
same way under one lock: write the change, recompute the netmaps, give a new
version to exactly the nodes whose netmap content changed, sign a delta from
each one's previous version, and commit all of it in one transaction. Only
after the commit does the in-memory view switch and the long-polls of those
nodes wake, so nothing a node is told was ever unacknowledged by the database.

The view holds each node's netmap at its current version (`Held`; netmaps share
most of their peers and rules, so a thousand dense ones are tens of MB), and
the signed delta to it from the version before. The full signed envelope is
made only when a node asks for one (its first poll, a restart, a missed
version): on a dense tailnet a join changes every netmap, and signing (and
holding) a thousand full envelopes per join is what deltas avoid.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from policyc.collector import paused_collector
from policyc.compiler.nodes import Inventory, Node
from policyc.control.errors import ControlError
from policyc.control.longpoll import Watchers
from policyc.control.netmaps import Candidates, Owners, TailnetNetmaps
from policyc.control.policies import (
    check_policy,
    diagnostics_json,
    policy_etag,
    refuse_too_large,
)
from policyc.control.registry import inventory_node
from policyc.control.statedir import ADMIN_TOKEN_SETTING, ControlKeys, StateError
from policyc.control.store import NodeRecord, Store, StoredPolicy
from policyc.netmap import NodeNetmap
from policyc.policy.load import load_policy_text
from policyc.policy.model import Policy
from policyc.protocol.codec import canonical_json
from policyc.protocol.delta import (
    KnownPeers,
    SourcesMemo,
    delta_payload,
    netmap_changes,
    sign_delta,
)
from policyc.protocol.envelope import EncodedNetmap, PeerOwner, sign_payload
from policyc.protocol.removal import RemovalNotice, sign_removal

CONTROL_ACTOR = "control"  # the audit log's actor for what control does by itself


def admin_actor(token_digest: str) -> str:
    """An admin in the audit log: a fingerprint of the token's digest, never the token."""
    return f"admin:{token_digest[:12]}"


def node_actor(node_key: str) -> str:
    return f"node:{node_key[:12]}"


@dataclass(frozen=True, slots=True)
class Held:
    """A node's netmap at its current version: what a full envelope is made of, and
    the base of the next delta."""

    version: int
    key: str  # the node key it is for
    netmap: NodeNetmap
    owners: tuple[PeerOwner, ...]
    policy_version: str  # the envelope's stamp
    issued_at: int
    delta: dict[str, str] | None = None  # signed delta from `base` to `version`
    base: int = 0


@dataclass(frozen=True, slots=True)
class View:
    """What pollers read without the lock: replaced whole, never mutated."""

    live: StoredPolicy
    policy: Policy
    records: Mapping[str, NodeRecord]  # every registered node, expired ones too
    active_by_key: Mapping[str, str]  # node key -> name, for nodes in the netmaps
    held: Mapping[str, Held] = field(default_factory=dict)
    # The netmap version counter after this change: a removal notice carries it, and it
    # is newer than the last netmap of every node no longer in the netmaps.
    counter: int = 0

    def active(self, now: float) -> list[NodeRecord]:
        return [r for r in self.records.values() if not r.expired(now)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one committed change did."""

    changed: frozenset[str]  # nodes that got a new netmap version


class Tailnet:
    def __init__(self, store: Store, keys: ControlKeys, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.keys = keys
        self.clock = clock
        self.lock = threading.RLock()
        self.watchers = Watchers()
        digest = store.setting(ADMIN_TOKEN_SETTING)
        live = store.live_policy()
        if digest is None or live is None:
            raise StateError(f"{store.path} has no admin token or policy: not initialised")
        self.admin_token_digest = digest
        policy, diags = load_policy_text(live.text)
        if diags.has_errors:
            raise StateError(f"the stored policy version {live.version} no longer loads: "
                             + "; ".join(str(d) for d in diags.errors))
        records = {r.name: r for r in store.nodes()}
        self.view = View(live, policy, records, {})
        self._netmaps: TailnetNetmaps | None = None
        self._nodes: dict[NodeRecord, Node] = {}
        self._owners: Owners | None = None
        with self.lock, self.store.transaction():
            pending = self._recompute(live, policy, records)
        self._install(pending)

    # --- the change pipeline ----------------------------------------------------------

    def change(self, write: Callable[[View], tuple[StoredPolicy, Policy,
                                                   dict[str, NodeRecord]]]) -> Outcome:
        """Run `write` (DB writes; returns the new policy and node set) and recompute.

        Raises whatever `write` raises, with nothing committed or changed.
        """
        with self.lock:
            recomputing = False
            try:
                with self.store.transaction():
                    live, policy, records = write(self.view)  # refusals raise here
                    recomputing = True
                    pending = self._recompute(live, policy, records)
            except BaseException:
                if recomputing:  # the index may have moved on: rebuild it next time
                    self._netmaps = None
                raise
        removed = set(self.view.active_by_key.values()) - set(pending.view.active_by_key.values())
        self._install(pending)
        self.watchers.notify(pending.changed | removed)
        return Outcome(pending.changed)

    def _recompute(self, live: StoredPolicy, policy: Policy,
                   records: dict[str, NodeRecord]) -> _Pending:
        # Netmaps, digests and deltas are acyclic: with the collector running, the
        # objects a dense join makes (~40,000 rules, their entries) set off
        # collections of the whole view (~15% of a 1k dense join; collector.py).
        with paused_collector():
            return self._recompute_now(live, policy, records)

    def _recompute_now(self, live: StoredPolicy, policy: Policy,
                       records: dict[str, NodeRecord]) -> _Pending:
        now = self.clock()
        active = sorted((r for r in records.values() if not r.expired(now)), key=lambda r: r.id)
        # The compiler's Node for each record, reused while the record is unchanged
        # (records are immutable; parsing every node's addresses per join showed up).
        nodes = {r: self._nodes.get(r) or inventory_node(r) for r in active}
        inventory = Inventory.of(list(nodes.values()))
        if self._netmaps is None:
            netmaps = TailnetNetmaps.build(policy, inventory)
            candidates = Candidates(frozenset(n.name for n in inventory), {})
        else:
            netmaps = self._netmaps
            candidates = netmaps.changed(policy, inventory)
        records = dict(records)
        owners = Owners(inventory, self._owners)
        # Each candidate's digest says whether it changed. A changed one gets a new
        # version and a delta from its previous one; its full envelope is signed only
        # when its node asks (see full_envelope).
        held = dict(self.view.held)
        memo: SourcesMemo = {}  # for this change's deltas (see netmap_changes)
        changed: list[str] = []
        stored_counter = self.store.counter("netmap_version")
        next_version = stored_counter + 1
        for name in sorted(candidates.names):
            previous = held.get(name)
            peer_delta = candidates.known.get(name) if previous is not None else None
            netmap = None
            if previous is not None and peer_delta is not None:
                netmap = netmaps.netmap_after(name, previous.netmap, peer_delta)
            if netmap is None:
                netmap, peer_delta = netmaps.netmap(name), None
            digest, node_owners = owners.digest(netmap)
            record = records[name]
            if digest != record.netmap_digest:
                record = records[name] = replace(
                    record, netmap_version=next_version, netmap_digest=digest,
                    netmap_policy=netmap.policy_version or live.etag[:16],
                    netmap_issued_at=int(now))
                next_version += 1
                changed.append(name)
                known = (owners.known_peers(netmap, node_owners, peer_delta)
                         if peer_delta is not None else None)
                held[name] = self._held(record, netmap, node_owners, live, now, previous,
                                        memo, known)
            elif previous is None:
                held[name] = self._held(record, netmap, node_owners, live, now, None)
        counter = max(next_version - 1, self._retired_version(active, records, now) + 1)
        if counter != stored_counter:
            self.store.set_counter("netmap_version", counter)
        self.store.set_netmap_versions([records[name] for name in changed])
        for record in active:  # not a candidate and never held (not expected; cheap)
            if record.name not in held:
                netmap = netmaps.netmap(record.name)
                held[record.name] = self._held(records[record.name], netmap, owners.of(netmap),
                                               live, now, None)
        active_by_key = {r.node_key: r.name for r in active}
        held = {name: h for name, h in held.items() if name in records}
        view = View(live, policy, records, active_by_key, held, counter)
        return _Pending(view, netmaps, frozenset(changed), nodes, owners)

    def _retired_version(self, active: list[NodeRecord], records: Mapping[str, NodeRecord],
                         now: float) -> int:
        """The newest netmap version held by a node that leaves (or has left) the netmaps:
        removed now, or expired. The counter is moved past it so that the removal notice
        such a node is given is newer than the netmap it enforces."""
        staying = {r.name for r in active}
        gone = (self.view.records[name].netmap_version
                for name in self.view.active_by_key.values()
                if name not in staying and name in self.view.records)
        expired = (r.netmap_version for r in records.values() if r.expired(now))
        return max(itertools.chain(gone, expired), default=0)

    def _held(self, record: NodeRecord, netmap: NodeNetmap, owners: tuple[PeerOwner, ...],
              live: StoredPolicy, now: float, previous: Held | None,
              memo: SourcesMemo | None = None, known: KnownPeers | None = None) -> Held:
        """The node's netmap at its (new) version, with the signed delta from
        `previous` when the node may apply one (same key, expressible change).
        `known`: how the peers and owners of `previous` became these, when known
        exactly (`Owners.known_peers`)."""
        # What this version was signed with (kept across restarts), else what it is now.
        stamp = record.netmap_policy or netmap.policy_version or live.etag[:16]
        issued_at = record.netmap_issued_at or int(now)
        if netmap.policy_version and netmap.policy_version != stamp:
            # After a restart an unchanged netmap is compiled from a later policy: the
            # content is the same (the digest leaves the stamp out), the stamp is not.
            netmap = replace(netmap, policy_version=stamp)
        held = Held(record.netmap_version, record.node_key, netmap, owners, stamp, issued_at)
        if previous is None or previous.key != record.node_key or \
                previous.version >= record.netmap_version:
            return held
        changes = netmap_changes(previous.netmap, previous.owners, netmap, owners, memo, known)
        if changes is None:
            return held
        payload = delta_payload(record.name, record.node_key, previous.version,
                                record.netmap_version, stamp, issued_at, canonical_json(changes))
        return replace(held, delta=sign_delta(self.keys.signing, payload), base=previous.version)

    def full_envelope(self, name: str, held: Held) -> dict[str, str]:
        """The signed full envelope of `held` (node `name`): made on demand, from the
        immutable view, so any thread may call it without the lock."""
        payload = EncodedNetmap(held.netmap, held.owners).payload(
            name, held.key, held.version, held.policy_version, held.issued_at)
        return sign_payload(self.keys.signing, payload)

    def _install(self, pending: _Pending) -> None:
        self.view = pending.view
        self._netmaps = pending.netmaps
        self._nodes = pending.nodes
        self._owners = pending.owners
        pending.owners.forget_earlier()

    # --- policy ----------------------------------------------------------------------------

    def put_policy(self, text: str, if_match: str | None, note: str, *,
                   actor: str = CONTROL_ACTOR, action: str = "policy.put") -> PolicyResult:
        """Store `text` as the live policy if it is valid and its tests pass.

        428 without If-Match, 412 when If-Match is not the live ETag, 413 over the
        policy size limit, 422 with diagnostics when invalid.
        """
        if if_match is None:
            raise ControlError(428, "precondition-required",
                               "PUT /policy needs If-Match: the ETag of the policy you read")
        with self.lock:
            live = self.view.live
            if if_match.strip() != "*" and if_match.strip().strip('"') != live.etag:
                raise ControlError(412, "stale-etag", "the live policy changed since it was "
                                   f"read (it is now version {live.version})")
            refuse_too_large(text)
            etag = policy_etag(text)
            if etag == live.etag:
                return PolicyResult(live, False, 0)
            inventory = Inventory.of([self._nodes.get(r) or inventory_node(r) for r in
                                      sorted(self.view.active(self.clock()), key=lambda r: r.id)])
            policy, diags = check_policy(text, inventory)
            if policy is None:
                raise ControlError(422, "invalid-policy", "the policy has errors or failing "
                                   "tests; nothing was stored", diagnostics_json(diags))

            def write(view: View) -> tuple[StoredPolicy, Policy, dict[str, NodeRecord]]:
                now = int(self.clock())
                version = self.store.add_policy(text, etag, now, note)
                self.store.add_audit(now, actor, action, f"version {version}",
                                     {"etag": etag, "note": note})
                return StoredPolicy(version, etag, text, now, note), policy, dict(view.records)

            outcome = self.change(write)
            return PolicyResult(self.view.live, True, len(outcome.changed))

    def rollback(self, version: int, *, actor: str = CONTROL_ACTOR) -> PolicyResult:
        old = self.store.policy(version)
        if old is None:
            raise ControlError(404, "unknown-version", f"there is no policy version {version}")
        return self.put_policy(old.text, "*", f"rollback to version {version}", actor=actor,
                               action="policy.rollback")

    # --- reads for pollers ----------------------------------------------------------

    def removal_notice(self, node_key: str) -> dict[str, str] | None:
        """None while `node_key` is in the netmaps; otherwise control's signed statement
        that it is not (removed, never registered, or expired), for the node that proved
        that key. Its version is the counter, newer than any netmap the key was given."""
        view = self.view
        if node_key in view.active_by_key:
            return None
        record = next((r for r in view.records.values() if r.node_key == node_key), None)
        notice = RemovalNotice(node_key, record.name if record else None,
                               "node-expired" if record else "not-registered",
                               view.counter, int(self.clock()))
        return sign_removal(self.keys.signing, notice)

    def expiry_due(self) -> bool:
        """Is a node still in the netmaps whose key has expired?"""
        now, view = self.clock(), self.view
        return any(view.records[name].expired(now) for name in view.active_by_key.values())

    def expire_due(self) -> Outcome:
        """Drop nodes whose key expired from every netmap (their rows stay)."""
        def write(view: View) -> tuple[StoredPolicy, Policy, dict[str, NodeRecord]]:
            now = int(self.clock())
            for name in sorted(view.active_by_key.values()):
                if view.records[name].expired(now):
                    self.store.add_audit(now, CONTROL_ACTOR, "node.expire", name, {})
            return view.live, view.policy, dict(view.records)

        return self.change(write)

    def rotate_admin_token(self, new_token_digest: str, *, actor: str) -> None:
        """Make the token with this digest the only valid one (the old one stops now)."""
        with self.lock, self.store.transaction():
            self.store.set_setting(ADMIN_TOKEN_SETTING, new_token_digest)
            self.store.add_audit(int(self.clock()), actor, "admin.token-rotate", "admin token",
                                 {"new": admin_actor(new_token_digest)})
        self.admin_token_digest = new_token_digest


@dataclass(frozen=True, slots=True)
class PolicyResult:
    live: StoredPolicy
    changed: bool  # False: the text was the live policy already
    netmaps_changed: int


@dataclass(frozen=True, slots=True)
class _Pending:
    view: View
    netmaps: TailnetNetmaps
    changed: frozenset[str]
    nodes: dict[NodeRecord, Node]
    owners: Owners
