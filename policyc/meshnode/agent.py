"""`policyc node up`: the agent's life, from the cached netmap to the long-poll loop.

    1. state dir, node key (made here the first time), the interface (created if
       missing), the local status socket;
    2. the cached netmap, verified again, is enforced before anything else, so a
       node restarted while control is away is back to its last rules at once;
    3. first join only: pin control's keys and register with the auth key;
    4. long-poll: each signed netmap newer than the one in force is verified, then
       enforced, then cached; a rejected one is logged and the rules stay. The poll
       offers to take deltas: control may answer with a signed delta from the
       version in force, which is verified and applied onto it (the result is the
       full netmap control would send), then enforced and cached the same way;
       control unreachable: retry with exponential backoff and full jitter, and
       keep enforcing what is in force (the mesh does not depend on control);
    5. removal: only control's signed removal notice, newer than the netmap in force,
       makes the node drop its peers and exit 1; an unsigned HTTP refusal is reported
       (`last_rejection`) and the rules stay.

SIGTERM/SIGINT end the loop between steps; the rules in force stay and the exit
status is 0. An apply in progress is finished first (a half-applied netmap is
never left behind by a signal).
"""

from __future__ import annotations

import logging
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from policyc.enforcer.netns import interface_exists
from policyc.meshnode.apply import HostNetwork, apply_netmap
from policyc.meshnode.client import TOO_LARGE, ControlClient, ControlError
from policyc.meshnode.iface import Interface, ensure_interface, remove_interface
from policyc.meshnode.keys import (
    NodeKey,
    load_or_create_node_key,
    load_pinned_control_keys,
    pin_control_keys,
)
from policyc.meshnode.localapi import LocalApi, ask
from policyc.meshnode.state import StateDir, StateError
from policyc.meshnode.verify import (
    Chain,
    Rejection,
    check_delta,
    check_removal,
    check_signed,
    load_cache,
    save_cache,
)
from policyc.meshnode.views import Identity, Status, peer_rows, whois
from policyc.netmap import NodeNetmap
from policyc.protocol import (
    NetmapEnvelope,
    PollResponse,
    ProtocolError,
    RegisterRequest,
    ServerKeys,
)

log = logging.getLogger("policyc.node")
# Between INFO (-v) and WARNING: what an operator wants to see by default (joined,
# pinned), without calling it a warning.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0
# The codes of a bare HTTP "no longer registered": never believed (see _unsigned_refusal).
REMOVED_CODES = frozenset({"not-registered", "node-expired"})
# An answer that is not control's answer to our request: someone in between.
TAMPERED_CODES = frozenset({"bad-box", "wrong-answer", "bad-json", "bad-message",
                            "bad-encoding"})
EXIT_REMOVED = 1
# Refusals that a retry cures: a clock a little off, or control restarted meanwhile.
RETRY_CODES = frozenset({"stale", "replay"})


class AgentFailed(Exception):
    """The agent cannot start or join (exit 2): bad state, refused key, no interface."""


class _Stop(Exception):
    """Raised by the signal handler to leave a blocking wait."""


class _Removed(Exception):
    """Control says this node is no longer part of the tailnet."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    server: str
    state: StateDir
    iface: str
    auth_key: str | None = None
    netns: str | None = None
    listen_port: int | None = None
    endpoints: tuple[str, ...] = ()
    advertise_routes: tuple[str, ...] = ()
    control_key: str | None = None  # control's signing key, pinned in advance
    hostname: str = field(default_factory=socket.gethostname)


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, first * 2^attempt)] (never 0 for long)."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * (2 ** min(attempt, 16)))
    return max(0.05, rng.uniform(0.0, ceiling))


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = config.state
        self._lock = threading.Lock()
        self._stopping = False
        self._applying = False
        self._configured = False  # private key and listen port set on the interface
        self._host: HostNetwork | None = None  # addresses/routes the last apply set
        self._rng = random.Random()
        self.envelope: NetmapEnvelope | None = None
        self.chain: Chain | None = None  # the signed form of `envelope`, as cached
        self.identity: dict[str, Any] | None = None
        self.control_reachable: bool | None = None
        self.last_apply: dict[str, Any] | None = None
        self.last_rejection: dict[str, Any] | None = None
        self.key: NodeKey | None = None
        self.interface: Interface | None = None
        self._made_interface = False  # by this run (undone if the first join fails)
        self.pins: ServerKeys | None = None

    # -- startup -----------------------------------------------------------------------

    def start(self) -> None:
        """Steps 1-2: everything that does not need control."""
        try:
            self.state.ensure()
            if ask(self.state.socket, {"op": "status"}) is not None:
                raise AgentFailed(f"an agent is already running with --state {self.state.root}"
                                  " (two would fight over the interface); stop it first")
            self.key, created = load_or_create_node_key(self.state)
            self.pins = load_pinned_control_keys(self.state)
            self.identity = self.state.read_json(self.state.identity)
        except StateError as err:
            raise AgentFailed(str(err)) from err
        if created:
            log.info("made a new node key; public key %s", self.key.public_key)
        if self.pins is not None and self.config.control_key is not None \
                and self.pins.signing_key != self.config.control_key:
            raise AgentFailed("--control-key differs from the control key pinned in "
                              f"{self.state.control_keys}")
        if self.identity is None and not self.config.auth_key:
            raise AgentFailed("this node has not joined yet: --auth-key is needed once")
        existed = interface_exists(self.config.iface, self.config.netns)
        self.interface = ensure_interface(self.state, self.config.iface, self.config.netns)
        self._made_interface = not existed and self.interface.kind != "existing"
        log.info("interface %s (%s)", self.interface.name, self.interface.kind)
        envelope, chain, problem = load_cache(self.state, self.pins,
                                              node_key=self.key.public_key,
                                              node_name=self._name())
        if problem is not None:
            self._reject(problem)
        if envelope is not None and chain is not None:
            log.info("enforcing the cached netmap, version %d", envelope.version)
            if self._enforce(envelope):
                self.chain = chain

    def _name(self) -> str | None:
        name = (self.identity or {}).get("name")
        return name if isinstance(name, str) else None

    # -- joining -----------------------------------------------------------------------

    def join(self, client: ControlClient) -> None:
        """Step 3 (first run only): register with the auth key, then pin control's keys.

        The keys are pinned only once control accepted the node: a mistyped --server
        or a refused auth key leaves nothing pinned to trip over on the next try.
        """
        assert self.key is not None
        offered = self.pins
        if offered is None:
            offered = client.server_keys()
            self._set_reachable(True)
            expected = self.config.control_key
            if expected is not None and offered.signing_key != expected:
                raise AgentFailed("control's signing key is not the one given with "
                                  "--control-key; refusing to join")
        client.keys = offered
        if self.identity is None:
            if not self.config.auth_key:
                raise AgentFailed("this node has not joined yet: --auth-key is needed once")
            self._register(client)
        elif drift := registration_drift(self.identity, self.config):
            self._reregister(client, drift)
        if self.pins is None:
            try:
                self.pins = pin_control_keys(self.state, offered, self.config.control_key)
            except StateError as err:
                raise AgentFailed(str(err)) from err
            log.log(NOTICE, "pinned control's signing key %s", offered.signing_key)

    def _reregister(self, client: ControlClient, drift: list[str]) -> None:
        """Started with another --endpoint or other routes than it registered with: ask
        control to take them (the node key proves it is this node; no auth key needed).
        A refusal is logged, not fatal: a removed node learns so from the signed notice."""
        try:
            self._register(client, auth_key="")
        except ControlError as err:
            if err.transient:
                raise
            log.warning("%s; control refused to take it: %s", "; ".join(drift), err)
            return
        log.log(NOTICE, "%s: control took the new values", "; ".join(drift))

    def _register(self, client: ControlClient, *, auth_key: str | None = None) -> None:
        request = RegisterRequest((self.config.auth_key or "") if auth_key is None else auth_key,
                                  self.config.hostname, self.config.advertise_routes,
                                  self.config.endpoints[0] if self.config.endpoints else None)
        answer = client.register(request)
        first = self.identity is None
        # What was asked for too: a later start with other values registers again.
        self.identity = {**answer.to_json(), "server": client.server,
                         "joined_at": (self.identity or {}).get("joined_at", time.time()),
                         "endpoint": request.endpoint,
                         "advertised_routes": list(request.routes)}
        self.state.write_json(self.state.identity, self.identity)
        if first:
            log.log(NOTICE, "joined as %s (%s)", answer.name, ", ".join(answer.addresses))

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Start, join, then follow control until a signal; the exit status."""
        self.start()
        api = LocalApi(self.state.socket, self.handle_local)
        client: ControlClient | None = None
        previous = _install_signal_handlers(self._on_signal)
        try:
            assert self.key is not None
            client = ControlClient(self.config.server, self.key.private(), self.pins)
            self._follow(client)
        except _Stop:
            pass
        except AgentFailed:
            self._undo_unjoined_start()
            raise
        except _Removed as removed:
            log.error("control's signed removal notice (%s): this node was removed from the "
                      "tailnet; its peers are gone and it admits nothing; `node up --auth-key` "
                      "joins again", removed)
            return EXIT_REMOVED
        finally:
            _restore_signal_handlers(previous)
            api.close()
            if client is not None:
                client.close()
        log.info("stopped; the rules in force stay")
        return 0

    def _undo_unjoined_start(self) -> None:
        """A first join that failed (refused auth key, wrong control key) leaves the
        host as it was: the interface this run created, and its wireguard-go, go."""
        if self.identity is None and self._made_interface:
            remove_interface(self.state)
            self._made_interface = False

    def _follow(self, client: ControlClient) -> None:
        attempt = 0
        joined = False
        while not self._stopping:
            try:
                if not joined:
                    self.join(client)
                    joined = True
                if self.control_reachable is not True:
                    # A quick GET: "reachable" again now, not when a long-poll ends.
                    client.server_keys()
                    self._set_reachable(True)
                since = self.envelope.version if self.envelope is not None else 0
                deltas = self.chain is not None and self.chain.wants_deltas
                answer = client.poll(since, deltas=deltas)
                self._set_reachable(True)
                if self._answer(answer):
                    attempt = 0
                    continue
                # Refused or not enforceable: control would give the same answer at
                # once, so wait as after a failure instead of asking again in a loop.
                delay = backoff_delay(attempt, self._rng)
            except ControlError as err:
                if not err.transient and not joined and err.code not in RETRY_CODES:
                    raise AgentFailed(f"control refused to let this node join: {err}") from err
                if joined and not err.transient and err.code not in RETRY_CODES:
                    self._unsigned_refusal(err)
                if err.code in TAMPERED_CODES or err.code == TOO_LARGE:
                    self._reject(Rejection(err.code, str(err)))
                self._set_reachable(err.code == TOO_LARGE)  # that one came from control
                delay = backoff_delay(attempt, self._rng)
                log.warning("%s; retrying in %.1f s", err, delay)
            attempt += 1
            self._sleep(delay)

    def _answer(self, answer: PollResponse) -> bool:
        """Act on a poll answer; False if it was refused or could not be enforced."""
        if answer.removed is not None:
            self._removal(answer.removed)  # leaves (raises _Removed) if it verifies
            return False
        if answer.changed and answer.delta is not None:
            return self._accept_delta(answer.delta)
        if answer.changed and answer.netmap is not None:
            return self._accept(answer.netmap)
        return True

    def _removal(self, signed: dict[str, Any]) -> None:
        assert self.key is not None and self.pins is not None
        current = self.envelope.version if self.envelope is not None else None
        try:
            notice = check_removal(signed, self.pins, node_key=self.key.public_key,
                                   node_name=self._name(), current_version=current)
        except ProtocolError as err:
            self._reject(Rejection(err.code, f"removal notice: {err.message}"), "removal")
            return
        self._leave(notice.reason)

    def _unsigned_refusal(self, err: ControlError) -> None:
        """An HTTP refusal is not signed: anyone on the path can send one. A node leaves
        only on control's signed removal notice; this is reported and the rules stay."""
        code = "unsigned-removal" if err.code in REMOVED_CODES else "unsigned-refusal"
        self._reject(Rejection(code, f"{err} (not signed by control: ignored)"), "refusal")

    def _leave(self, reason: str) -> None:
        """Removed by control: no peers, a filter that admits nothing, no identity."""
        assert self.interface is not None and self.key is not None
        name = self._name() or ""
        empty = NodeNetmap(node=name, addresses=(), peers=(), packet_filter=())
        self._applying = True
        try:
            outcome = apply_netmap(empty, self.interface.name, netns=self.interface.netns,
                                   private_key_file=None, listen_port=None)
            with self._lock:
                self.envelope = None
                self.chain = None
                self.last_apply = {"ok": outcome.ok, "version": None, "at": time.time(),
                                   "summary": f"removed from the tailnet: {outcome.summary()}"}
            self.state.remove(self.state.netmap)
            self.state.remove(self.state.identity)
            self.identity = None
        finally:
            self._applying = False
        raise _Removed(reason)

    def _accept(self, signed: dict[str, Any]) -> bool:
        """Verify, enforce and cache a netmap; False if refused or its filter failed."""
        assert self.key is not None and self.pins is not None
        current = self.envelope.version if self.envelope is not None else None
        try:
            envelope = check_signed(signed, self.pins, node_key=self.key.public_key,
                                    node_name=self._name(), current_version=current)
        except ProtocolError as err:
            self._reject(Rejection(err.code, err.message))
            return False
        return self._enforce_and_cache(envelope, Chain(signed))

    def _accept_delta(self, signed: dict[str, Any]) -> bool:
        """Verify a delta, apply it onto the netmap in force, then as `_accept`."""
        assert self.key is not None and self.pins is not None
        if self.envelope is None or self.chain is None:  # not asked for: nothing to apply to
            self._reject(Rejection("wrong-base", "a netmap delta, but no netmap in force"))
            return False
        try:
            envelope = check_delta(signed, self.pins, node_key=self.key.public_key,
                                   node_name=self._name(), in_force=self.envelope)
        except ProtocolError as err:
            self._reject(Rejection(err.code, f"netmap delta: {err.message}"))
            return False
        return self._enforce_and_cache(envelope, self.chain.then(signed))

    def _enforce_and_cache(self, envelope: NetmapEnvelope, chain: Chain) -> bool:
        self._applying = True  # a signal now waits until the cache agrees with the host
        try:
            enforced = self._enforce(envelope)
            if enforced:
                save_cache(self.state, chain)
                self.chain = chain
        finally:
            self._applying = False
        if self._stopping:
            raise _Stop
        return enforced

    def _enforce(self, envelope: NetmapEnvelope) -> bool:
        """Apply `envelope`; it is in force (and returned True) once its filter loaded."""
        assert self.key is not None and self.interface is not None
        started = time.monotonic()
        # The key and port are set once per agent run: they do not change with netmaps.
        first = not self._configured
        outcome = apply_netmap(envelope.netmap, self.interface.name,
                               netns=self.interface.netns,
                               private_key_file=str(self.key.private_key_file) if first else None,
                               listen_port=self.config.listen_port if first else None,
                               host_in_force=self._host)
        seconds = time.monotonic() - started
        self._host = outcome.host
        if outcome.enforce.peers.ok or outcome.enforce.filter_loaded:
            self._configured = True
        with self._lock:
            self.last_apply = {"ok": outcome.ok, "version": envelope.version,
                               "summary": outcome.summary(), "at": time.time(),
                               "seconds": round(seconds, 4)}
            if outcome.enforce.filter_loaded:
                self.envelope = envelope
        level = logging.INFO if outcome.ok else logging.ERROR
        log.log(level, "netmap version %d: %s", envelope.version, outcome.summary())
        return outcome.enforce.filter_loaded

    def _reject(self, rejection: Rejection, what: str = "netmap") -> None:
        with self._lock:
            self.last_rejection = {"code": rejection.code, "message": rejection.message,
                                   "at": time.time()}
        log.error("%s rejected, the rules in force stay: %s", what, rejection)

    def _set_reachable(self, value: bool) -> None:
        with self._lock:
            self.control_reachable = value

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        if not self._applying:
            raise _Stop

    # -- the local socket -------------------------------------------------------------

    def status(self) -> Status:
        with self._lock:
            envelope = self.envelope
            return Status(
                name=self._name(),
                addresses=tuple((self.identity or {}).get("addresses") or ()),
                agent_running=True, control_reachable=self.control_reachable,
                netmap_version=envelope.version if envelope else None,
                netmap_issued_at=envelope.issued_at if envelope else None,
                policy_version=envelope.policy_version if envelope else None,
                peers=peer_rows(envelope.netmap if envelope else None),
                last_apply=self.last_apply, last_rejection=self.last_rejection,
                extra={"state": str(self.state.root),
                       "interface": self.interface.to_json() if self.interface else None,
                       "public_key": self.key.public_key if self.key else None,
                       "joined_at": (self.identity or {}).get("joined_at")})

    def handle_local(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return self.status().to_json(time.time())
        if op == "whois":
            envelope = self.envelope
            addr = request.get("addr")
            if envelope is None or not isinstance(addr, str):
                return {"found": False, "whois": None}
            found = whois(envelope.netmap, identities_of(envelope), addr,
                          self.key.public_key if self.key else "", self_identity(self.identity))
            return {"found": found is not None, "whois": found.to_json() if found else None}
        return {"error": f"unknown op {op!r}"}


def registration_drift(identity: dict[str, Any] | None, config: AgentConfig) -> list[str]:
    """What differs between this start's --endpoint or routes and the node's registration
    (the agent then registers again, so control takes them)."""
    if not identity:
        return []
    out = []
    endpoint = config.endpoints[0] if config.endpoints else None
    if "endpoint" in identity and identity["endpoint"] != endpoint:
        out.append(f"--endpoint {endpoint or '(none)'} differs from the one this node "
                   f"registered with ({identity['endpoint'] or 'none'})")
    registered = identity.get("advertised_routes")
    if isinstance(registered, list) and set(registered) != set(config.advertise_routes):
        out.append(f"the routes to advertise ({', '.join(config.advertise_routes) or 'none'}"
                   "; --advertise-routes, --advertise-exit-node) differ from the ones this "
                   f"node registered with ({', '.join(map(str, registered)) or 'none'})")
    return out


def identities_of(envelope: NetmapEnvelope) -> dict[str, Identity]:
    """Who owns each peer, as control's signed envelope says (empty if it says nothing)."""
    return {o.name: Identity(o.user, o.tags) for o in envelope.owners}


def self_identity(identity: dict[str, Any] | None) -> Identity | None:
    if not identity:
        return None
    user = identity.get("user")
    return Identity(user if isinstance(user, str) else None,
                    tuple(t for t in identity.get("tags") or () if isinstance(t, str)))


Handlers = dict[int, Any]


def _install_signal_handlers(handler: Any) -> Handlers:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signal_handlers(previous: Handlers) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)
