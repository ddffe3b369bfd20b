"""WireGuard backend: make an interface's peers exactly a netmap's peers.

`render_wireguard` is the pure arrow (netmap -> `wg setconf`-style text, for
golden tests and dry runs). `apply_peers` talks to a live interface through
`wg` (kernel or wireguard-go, the tool hides which): it reads the running
peers, removes the ones the netmap no longer lists, sets the others, and
reads back to verify. It works by diff rather than `wg syncconf` because
syncconf without a PrivateKey line wipes the interface's private key and
listen port, and the private key must never pass through policyc's text.

Errors come back as diagnostics in the result (N503 interface missing,
N504 no privilege, N508 namespace missing, N505 anything else); nothing here raises for bad input.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import NO_SPAN
from policyc.netmap import NodeNetmap, Peer

WG_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class PeerState:
    """One peer as the interface has it (a line of `wg show IF dump`)."""

    key: str
    allowed_ips: frozenset[str]
    endpoint: str | None


@dataclass(frozen=True, slots=True)
class WgResult:
    ok: bool
    added: tuple[str, ...] = ()  # peer public keys
    removed: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()


# --- rendering -----------------------------------------------------------------


def render_wireguard(netmap: NodeNetmap, private_key_file: str | None = None) -> str:
    """The netmap's peers as `wg setconf` text, deterministic (peers by key).

    The private key is referenced, never included: load it with
    `wg set IFACE private-key FILE`. (Feeding this text to `wg setconf`
    would clear the key, which is why `apply_peers` does not.)
    """
    lines = [f"# policyc: WireGuard peers of {netmap.node}"]
    if netmap.policy_version:
        lines.append(f"# policy version: {netmap.policy_version}")
    lines.append("[Interface]")
    if private_key_file is not None:
        lines.append(f"# PrivateKey from file: {private_key_file}")
    for peer in sorted(netmap.peers, key=lambda p: p.key):
        lines.extend(("", "[Peer]", f"# {peer.name}", f"PublicKey = {peer.key}"))
        allowed = peer_allowed_ips(peer)
        if allowed:
            lines.append(f"AllowedIPs = {', '.join(allowed)}")
        if peer.endpoint:
            lines.append(f"Endpoint = {peer.endpoint}")
    return "\n".join(lines) + "\n"


def peer_allowed_ips(peer: Peer) -> tuple[str, ...]:
    """Canonical CIDRs a peer may source: its addresses plus routes for us.

    The netmap's `allowed_ips` should already include the /32 and /128 of
    each address; adding them again is harmless and protects against a
    netmap that lists only routes.
    """
    cidrs = {_canonical_cidr(a) for a in (*peer.addresses, *peer.allowed_ips)}
    valid = (c for c in cidrs if c is not None)
    return tuple(sorted(valid, key=_cidr_sort_key))


def _canonical_cidr(text: str) -> str | None:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


def _cidr_sort_key(cidr: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(cidr)
    return net.version, int(net.network_address), net.prefixlen


# --- reading the interface ------------------------------------------------------------


def _wg_command(args: Sequence[str], netns: str | None) -> list[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return [*prefix, "wg", *args]


def _run_wg(args: Sequence[str], netns: str | None,
            diags: Diagnostics, iface: str) -> subprocess.CompletedProcess[str] | None:
    """Run `wg`; on failure append a diagnostic and return None."""
    try:
        proc = subprocess.run(_wg_command(args, netns), capture_output=True, text=True,
                              timeout=WG_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError as exc:
        diags.error("N505", NO_SPAN, f"cannot run {exc.filename}: not installed")
        return None
    except subprocess.TimeoutExpired:
        diags.error("N505", NO_SPAN, f"wg {args[0]} on {iface} timed out")
        return None
    if proc.returncode != 0:
        diags.error(_classify_failure(proc.stderr), NO_SPAN,
                    f"wg {args[0]} on {iface} failed: {proc.stderr.strip()}")
        return None
    return proc


def _classify_failure(stderr: str) -> str:
    lowered = stderr.lower()
    if "unable to access interface" in lowered or "no such device" in lowered:
        return "N503"
    if "cannot open network namespace" in lowered and "no such file" in lowered:
        return "N508"
    if "operation not permitted" in lowered or "permission denied" in lowered:
        return "N504"
    return "N505"


def read_peers(iface: str, *, netns: str | None = None,
               diagnostics: Diagnostics | None = None) -> dict[str, PeerState] | None:
    """The interface's peers by public key, or None (with a diagnostic)."""
    diags = diagnostics if diagnostics is not None else Diagnostics()
    proc = _run_wg(["show", iface, "dump"], netns, diags, iface)
    if proc is None:
        return None
    return parse_dump(proc.stdout)


def parse_dump(text: str) -> dict[str, PeerState]:
    """Peers from `wg show IF dump` (first line is the interface itself)."""
    peers: dict[str, PeerState] = {}
    for line in text.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) < 4:
            continue
        key, _psk, endpoint, allowed = fields[:4]
        ips = frozenset() if allowed == "(none)" else frozenset(allowed.split(","))
        peers[key] = PeerState(key, ips, None if endpoint == "(none)" else endpoint)
    return peers


# --- applying -----------------------------------------------------------------------


def is_valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def plan_peer_changes(netmap: NodeNetmap, running: dict[str, PeerState],
                      *, removals_only: bool = False) -> tuple[list[str], list[str], list[str]]:
    """`wg set` arguments plus the keys removed and the keys added/changed.

    Unchanged peers are left alone so their WireGuard sessions survive.
    With `removals_only`, only stale peers are dropped (used when the filter
    failed to load: removing access is always safe, adding it is not).
    """
    wanted = {p.key: p for p in netmap.peers}
    args: list[str] = []
    removed = sorted(k for k in running if k not in wanted)
    for key in removed:
        args += ["peer", key, "remove"]
    changed: list[str] = []
    for key in [] if removals_only else sorted(wanted):
        peer = wanted[key]
        allowed = peer_allowed_ips(peer)
        state = running.get(key)
        same_ips = state is not None and state.allowed_ips == frozenset(allowed)
        same_endpoint = peer.endpoint is None or (state is not None
                                                 and state.endpoint == peer.endpoint)
        if same_ips and same_endpoint:
            continue
        changed.append(key)
        args += ["peer", key, "allowed-ips", ",".join(allowed)]
        if peer.endpoint:
            args += ["endpoint", peer.endpoint]
    return args, removed, changed


def _check_keys(netmap: NodeNetmap, diags: Diagnostics) -> bool:
    bad = [p.name for p in netmap.peers if not is_valid_key(p.key)]
    for name in bad:
        diags.error("N505", NO_SPAN, f"peer {name!r} has an invalid WireGuard public key")
    return not bad


def apply_peers(netmap: NodeNetmap, iface: str, *, netns: str | None = None,
                removals_only: bool = False) -> WgResult:
    """Make `iface`'s peers exactly `netmap.peers`, then read back to verify.

    The private key and listen port are left as configured. A peer whose
    endpoint is null keeps whatever endpoint WireGuard learned (the other
    side knows ours and will initiate).
    """
    diags = Diagnostics()
    if not _check_keys(netmap, diags):
        return WgResult(False, diagnostics=tuple(diags))
    running = read_peers(iface, netns=netns, diagnostics=diags)
    if running is None:
        return WgResult(False, diagnostics=tuple(diags))
    args, removed, changed = plan_peer_changes(netmap, running, removals_only=removals_only)
    if args and _run_wg(["set", iface, *args], netns, diags, iface) is None:
        return WgResult(False, diagnostics=tuple(diags))
    added = tuple(k for k in changed if k not in running)
    updated = tuple(k for k in changed if k in running)
    if not removals_only:
        _verify(netmap, iface, netns, diags)
    return WgResult(not diags.has_errors, added, tuple(removed), updated, tuple(diags))


def _verify(netmap: NodeNetmap, iface: str, netns: str | None, diags: Diagnostics) -> None:
    after = read_peers(iface, netns=netns, diagnostics=diags)
    if after is None:
        return
    wanted = {p.key: frozenset(peer_allowed_ips(p)) for p in netmap.peers}
    actual = {k: s.allowed_ips for k, s in after.items()}
    if wanted != actual:
        extra = sorted(set(actual) - set(wanted))
        missing = sorted(set(wanted) - set(actual))
        diags.error("N505", NO_SPAN,
                    f"{iface} peers differ from the netmap after applying",
                    notes=[f"unexpected peers: {extra}", f"missing peers: {missing}"])


def configure_interface(iface: str, *, netns: str | None = None,
                        private_key_file: str | None = None,
                        listen_port: int | None = None) -> WgResult:
    """Set the private key (by file, never by value) and/or listen port."""
    diags = Diagnostics()
    args: list[str] = []
    if private_key_file is not None:
        if not os.path.isfile(private_key_file):
            diags.error("N505", NO_SPAN, f"private key file {private_key_file} does not exist")
            return WgResult(False, diagnostics=tuple(diags))
        args += ["private-key", private_key_file]
    if listen_port is not None:
        args += ["listen-port", str(listen_port)]
    if args:
        _run_wg(["set", iface, *args], netns, diags, iface)
    return WgResult(not diags.has_errors, diagnostics=tuple(diags))
