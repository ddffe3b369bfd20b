"""A WireGuard mesh of network namespaces for end-to-end tests.

`Mesh.build(inventory, names)` makes one namespace per node, joins them to a
hub namespace's bridge by veth pairs (underlay 198.18.0.0/24), starts a
wireguard-go interface in each with a fresh X25519 key, gives it the node's
mesh addresses from the inventory and routes 100.64.0.0/10 and
fd7a:115c:a1e0::/48 over it. `mesh.inventory` is the input inventory
restricted to those nodes with the real public keys and underlay endpoints
substituted, ready to compile.

`mesh.add_lan(router, prefix, hosts)` puts a LAN behind a subnet router: one
namespace per host on a bridge in the router's namespace, IPv4 forwarding on
in the router, and a route for the prefix over every other node's WireGuard
interface (its allowed-ips decide whether the router's peer gets it).

Traffic helpers send only to addresses inside the namespaces built here.
Everything is torn down by PID and namespace name (`Mesh.close`, also on a
failed build); `sweep_leftovers` removes what a killed test run left behind.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from nacl.public import PrivateKey

from policyc.compiler.nodes import Inventory, Node
from policyc.netmap import NodeNetmap

NS_PREFIX = "pce"  # every namespace: pce<pid>m<mesh>... so leftovers can be swept
WG_PREFIX = "pcw"
WG_PORT = 41641
WG_SOCKET_DIR = Path("/var/run/wireguard")
MESH_V4, MESH_V6 = "100.64.0.0/10", "fd7a:115c:a1e0::/48"
UNDERLAY = ipaddress.ip_network("198.18.0.0/24")
HUB_ADDRESS = str(UNDERLAY.network_address + 1)  # the hub's own address (a control server)
# LANs behind subnet routers must lie in the benchmarking range (RFC 2544), so a
# probe can never leave the namespaces built here.
LAN_SPACE = ipaddress.ip_network("198.18.0.0/15")
LAN_BRIDGE = "lan0"
WAIT_SECONDS = 5.0
_WG_ENV = {**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
_mesh_ids = itertools.count(1)


def requirements_missing() -> str | None:
    """Why privileged e2e tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables, wireguard-go)"
    for tool in ("ip", "nft", "wg", "wireguard-go", "nc", "ping"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def sh(cmd: Sequence[str], *, timeout: float = WAIT_SECONDS, check: bool = True,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          input=input, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def wait_for(predicate: object, timeout: float = WAIT_SECONDS, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(step)
    return bool(callable(predicate) and predicate())


# --- nodes ------------------------------------------------------------------------


class InNamespace:
    """Running commands inside a namespace this harness made (`self.netns`)."""

    netns: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def run(self, cmd: Sequence[str], *, timeout: float = WAIT_SECONDS, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside the namespace."""
        return sh([*self.exec_prefix(), *cmd], timeout=timeout, check=check, input=input)

    def popen(self, cmd: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.exec_prefix(), *cmd], text=True,  # type: ignore[call-overload]
                                **kwargs)


@dataclass
class MeshNode(InNamespace):
    name: str
    netns: str
    iface: str  # the WireGuard interface
    underlay: str  # 198.18.0.x on eth0
    addresses: tuple[str, ...]  # mesh IPs from the inventory
    public_key: str
    private_key_file: str
    wg_process: subprocess.Popen[bytes] | None = None

    @property
    def ipv4(self) -> str:
        return next(a for a in self.addresses if ":" not in a)

    @property
    def ipv6(self) -> str:
        return next(a for a in self.addresses if ":" in a)

    @property
    def endpoint(self) -> str:
        return f"{self.underlay}:{WG_PORT}"

    def wg_peers(self) -> set[str]:
        out = self.run(["wg", "show", self.iface, "peers"], check=True).stdout
        return set(out.split())


# --- LAN hosts behind a subnet router -----------------------------------------------


@dataclass
class LanHost(InNamespace):
    """One host on a LAN behind a subnet router: its own namespace, one address."""

    name: str
    ip: str
    netns: str


@dataclass
class LanHosts:
    """A LAN `prefix` behind mesh node `router` (see `Mesh.add_lan`)."""

    router: str  # mesh node name
    router_netns: str
    bridge: str  # in the router's namespace, holding `gateway`
    prefix: str
    gateway: str
    hosts: dict[str, LanHost] = dataclasses.field(default_factory=dict)
    clients: tuple[str, ...] = ()  # mesh nodes given a route for `prefix` over WireGuard

    def __getitem__(self, name: str) -> LanHost:
        return self.hosts[name]

    def host_for_ip(self, ip: str) -> LanHost:
        wanted = ipaddress.ip_address(ip)
        for host in self.hosts.values():
            if ipaddress.ip_address(host.ip) == wanted:
                return host
        raise KeyError(f"no LAN host has address {ip}")

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(h.netns for h in self.hosts.values())


def _kill(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=2)


# --- the mesh ---------------------------------------------------------------------------


@dataclass
class Mesh:
    mesh_id: int
    hub: str
    nodes: dict[str, MeshNode]
    inventory: Inventory
    keydir: str
    lans: list[LanHosts] = dataclasses.field(default_factory=list)

    @classmethod
    def build(cls, inventory: Inventory, names: Iterable[str] | None = None, *,
              wireguard: bool = True) -> Mesh:
        """Namespaces, veths, wireguard-go and addresses for `names` (default all).

        With `wireguard=False` the nodes get only their namespace and underlay:
        whatever runs there (the node agent) makes the WireGuard interface
        `node.iface`, and `node.addresses` is filled in once it is known.
        """
        chosen = [inventory.by_name[n] for n in names] if names is not None else list(inventory)
        mesh_id = next(_mesh_ids)
        mesh = cls(mesh_id, f"{NS_PREFIX}{os.getpid()}m{mesh_id}hub", {}, inventory,
                   tempfile.mkdtemp(prefix="policyc-e2e-"))
        try:
            sh(["ip", "netns", "add", mesh.hub])
            _ns_setup_hub(mesh.hub)
            for node in chosen:
                mesh.add_node(node, wireguard=wireguard)
            if wireguard:
                mesh.inventory = mesh._substituted(chosen)
        except BaseException:
            mesh.close()
            raise
        return mesh

    def add_node(self, node: Node, *, wireguard: bool = True) -> MeshNode:
        """One more node on the hub's bridge (index = how many there are)."""
        index = len(self.nodes)
        return self._add_node(node, index,
                              f"{NS_PREFIX}{os.getpid()}m{self.mesh_id}n{index}", wireguard)

    def _add_node(self, node: Node, index: int, netns: str,
                  wireguard: bool = True) -> MeshNode:
        underlay = str(UNDERLAY.network_address + 10 + index)
        sh(["ip", "netns", "add", netns])
        sh(["ip", "-n", self.hub, "link", "add", f"h{index}", "type", "veth",
            "peer", "name", "eth0", "netns", netns])
        sh(["ip", "-n", self.hub, "link", "set", f"h{index}", "master", "br0", "up"])
        for cmd in (["link", "set", "lo", "up"], ["link", "set", "eth0", "up"],
                    ["addr", "add", f"{underlay}/{UNDERLAY.prefixlen}", "dev", "eth0"]):
            sh(["ip", "-n", netns, *cmd])
        private = PrivateKey.generate()
        key_file = Path(self.keydir) / f"{node.name}.key"
        key_file.touch(mode=0o600)
        key_file.write_text(base64.b64encode(bytes(private)).decode() + "\n")
        mesh_node = MeshNode(
            name=node.name, netns=netns,
            iface=f"{WG_PREFIX}{os.getpid() % 100000}m{self.mesh_id}n{index}",
            underlay=underlay, addresses=tuple(str(ip) for ip in node.ips),
            public_key=base64.b64encode(bytes(private.public_key)).decode(),
            private_key_file=str(key_file),
        )
        # Registered before wireguard-go starts so close() always finds its PID.
        self.nodes[node.name] = mesh_node
        if wireguard:
            _start_wireguard(mesh_node)
        return mesh_node

    def _substituted(self, chosen: Sequence[Node]) -> Inventory:
        return Inventory.of([
            dataclasses.replace(n, key=self.nodes[n.name].public_key,
                                endpoint=self.nodes[n.name].endpoint)
            for n in chosen
        ])

    # -- lookups ---------------------------------------------------------------------

    def __getitem__(self, name: str) -> MeshNode:
        return self.nodes[name]

    def node_for_ip(self, ip: str) -> MeshNode:
        wanted = ipaddress.ip_address(ip)
        for node in self.nodes.values():
            if any(ipaddress.ip_address(a) == wanted for a in node.addresses):
                return node
        raise KeyError(f"no mesh node has address {ip}")

    # -- enforcement -----------------------------------------------------------------

    def enforce(self, netmaps: dict[str, NodeNetmap]) -> None:
        """Run policyc's node enforcement for every mesh node."""
        for name in self.nodes:
            self.enforce_node(name, netmaps[name])

    def enforce_node(self, name: str, netmap: NodeNetmap) -> None:
        """`policyc.enforcer.node.enforce` on one node; raises if it did not succeed."""
        from policyc.enforcer.node import enforce

        node = self.nodes[name]
        routes = tuple(str(r) for r in self.inventory.by_name[name].routes)
        result = enforce(netmap, node.iface, netns=node.netns, routes=routes)
        if not result.ok:
            raise RuntimeError(f"enforce on {name} failed: {result.messages()}")

    # -- LANs behind subnet routers --------------------------------------------------

    def add_lan(self, router_name: str, prefix: str, hosts: dict[str, str], *,
                gateway: str | None = None,
                clients: Iterable[str] | None = None) -> LanHosts:
        """Put LAN `prefix` behind mesh node `router_name`, one namespace per host.

        The router gets a bridge holding `gateway` (default: the prefix's
        first address) and IPv4 forwarding; each host a veth into that bridge,
        its address from `hosts` (name -> IP) and a default route via the
        gateway. `clients` (default: every other mesh node) get a route for
        the prefix over their WireGuard interface; whether a packet then
        leaves is up to the allowed-ips of their peers. The prefix must lie in
        198.18.0.0/15. Everything is torn down by `close` (also when this
        fails half-way, it removes what it made before raising).
        """
        router = self.nodes[router_name]
        net = ipaddress.ip_network(prefix)
        if net.version != 4 or not net.subnet_of(LAN_SPACE):
            raise ValueError(f"LAN {prefix} is not inside {LAN_SPACE}")
        gw = ipaddress.ip_address(gateway) if gateway else net.network_address + 1
        addresses = [ipaddress.ip_address(ip) for ip in hosts.values()]
        usable = set(net.hosts())
        if gw not in usable or any(a not in usable or a == gw for a in addresses) \
                or len(set(addresses)) != len(addresses):
            raise ValueError(f"LAN hosts {hosts} and gateway {gw} must be distinct "
                             f"host addresses of {net}")
        index = len(self.lans)
        base = f"{NS_PREFIX}{os.getpid()}m{self.mesh_id}l{index}"
        others = [n for n in self.nodes if n != router_name]
        lan = LanHosts(router_name, router.netns, f"lan{index}", str(net), str(gw))
        self.lans.append(lan)  # before anything exists, so close() always finds it
        try:
            router.run(["ip", "link", "add", lan.bridge, "type", "bridge"], check=True)
            router.run(["ip", "addr", "add", f"{gw}/{net.prefixlen}", "dev", lan.bridge],
                       check=True)
            router.run(["ip", "link", "set", lan.bridge, "up"], check=True)
            router.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=True)
            for number, (name, ip) in enumerate(hosts.items()):
                host = LanHost(name, str(ipaddress.ip_address(ip)), f"{base}h{number}")
                lan.hosts[name] = host
                _add_lan_host(lan, host, f"l{index}h{number}", net.prefixlen)
            lan.clients = tuple(others if clients is None else clients)
            for name in lan.clients:
                node = self.nodes[name]
                node.run(["ip", "route", "add", str(net), "dev", node.iface], check=True)
            for host in lan.hosts.values():  # the bridge forwards (no STP delay)
                if not wait_for(lambda h=host: ping(h, lan.gateway, 1.0), timeout=WAIT_SECONDS):
                    raise RuntimeError(f"LAN host {host.name} cannot reach {lan.gateway}")
        except BaseException:
            _close_lan(lan)
            self.lans.remove(lan)
            raise
        return lan


    # -- teardown --------------------------------------------------------------------

    def close(self) -> None:
        for lan in self.lans:
            _close_lan(lan)
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                _kill(node.wg_process)
            with contextlib.suppress(Exception):
                _kill_namespace_processes(node.netns)  # e.g. an agent's own wireguard-go
            (WG_SOCKET_DIR / f"{node.iface}.sock").unlink(missing_ok=True)
            with contextlib.suppress(Exception):
                sh(["ip", "netns", "del", node.netns], check=False)
        with contextlib.suppress(Exception):
            _kill_namespace_processes(self.hub)  # e.g. a control server
        with contextlib.suppress(Exception):
            sh(["ip", "netns", "del", self.hub], check=False)
        shutil.rmtree(self.keydir, ignore_errors=True)

    def __enter__(self) -> Mesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _add_lan_host(lan: LanHosts, host: LanHost, router_side: str, prefixlen: int) -> None:
    sh(["ip", "netns", "add", host.netns])
    sh(["ip", "-n", lan.router_netns, "link", "add", router_side, "type", "veth",
        "peer", "name", "eth0", "netns", host.netns])
    sh(["ip", "-n", lan.router_netns, "link", "set", router_side, "master", lan.bridge, "up"])
    for cmd in (["link", "set", "lo", "up"], ["link", "set", "eth0", "up"],
                ["addr", "add", f"{host.ip}/{prefixlen}", "dev", "eth0"],
                ["route", "add", "default", "via", lan.gateway]):
        sh(["ip", "-n", host.netns, *cmd])


def _kill_namespace_processes(netns: str) -> None:
    """SIGKILL every process in a namespace this harness made (by PID)."""
    for pid in sh(["ip", "netns", "pids", netns], check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _close_lan(lan: LanHosts) -> None:
    """Kill what runs in the LAN's namespaces (by PID), then delete them by name."""
    for host in lan.hosts.values():
        with contextlib.suppress(Exception):
            _kill_namespace_processes(host.netns)
        with contextlib.suppress(Exception):
            sh(["ip", "netns", "del", host.netns], check=False)
    with contextlib.suppress(Exception):  # the router may outlive its LAN
        sh(["ip", "-n", lan.router_netns, "link", "del", lan.bridge], check=False)


def wg_allowed_ips(node: MeshNode) -> dict[str, set[str]]:
    """The running WireGuard peers of `node`: public key -> allowed-ips."""
    out = node.run(["wg", "show", node.iface, "allowed-ips"], check=True).stdout
    peers: dict[str, set[str]] = {}
    for line in out.splitlines():
        key, *ips = line.split()
        peers[key] = {ip for ip in ips if ip != "(none)"}
    return peers


def _ns_setup_hub(hub: str) -> None:
    sh(["ip", "-n", hub, "link", "set", "lo", "up"])
    sh(["ip", "-n", hub, "link", "add", "br0", "type", "bridge"])
    sh(["ip", "-n", hub, "addr", "add", f"{HUB_ADDRESS}/{UNDERLAY.prefixlen}", "dev", "br0"])
    sh(["ip", "-n", hub, "link", "set", "br0", "up"])


def _start_wireguard(node: MeshNode) -> None:
    socket = WG_SOCKET_DIR / f"{node.iface}.sock"
    node.wg_process = subprocess.Popen(
        [*node.exec_prefix(), "wireguard-go", "-f", node.iface],
        env=_WG_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for(socket.exists):
        raise RuntimeError(f"wireguard-go for {node.iface} did not create {socket}")
    node.run(["wg", "set", node.iface, "private-key", node.private_key_file,
              "listen-port", str(WG_PORT)], check=True)
    for address in node.addresses:
        plen = 128 if ":" in address else 32
        node.run(["ip", "addr", "add", f"{address}/{plen}", "dev", node.iface, "nodad"],
                 check=True)
    node.run(["ip", "link", "set", node.iface, "up"], check=True)
    node.run(["ip", "route", "add", MESH_V4, "dev", node.iface], check=True)
    node.run(["ip", "-6", "route", "add", MESH_V6, "dev", node.iface], check=True)


def sweep_leftovers() -> list[str]:
    """Delete namespaces (and the processes in them) of test runs that died.

    Only namespaces named with our prefix whose creating PID is gone are
    touched, so a concurrent test run is left alone.
    """
    listing = sh(["ip", "netns", "list"], check=False).stdout.split("\n")
    swept: list[str] = []
    for line in listing:
        name = line.split(" ")[0]
        owner = _owner_pid(name)
        if owner is None or _pid_alive(owner):
            continue
        pids = sh(["ip", "netns", "pids", name], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh(["ip", "netns", "del", name], check=False)
        swept.append(name)
    swept.extend(_sweep_stale_sockets())
    return swept


def _sweep_stale_sockets() -> list[str]:
    """UAPI sockets of our interfaces whose wireguard-go is gone (nobody listens)."""
    swept = []
    for path in Path("/var/run/wireguard").glob(f"{WG_PREFIX}*.sock"):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink(missing_ok=True)
            swept.append(str(path))
        except OSError:
            pass
        finally:
            probe.close()
    return swept


def _owner_pid(netns: str) -> int | None:
    if not netns.startswith(NS_PREFIX):
        return None
    digits = netns[len(NS_PREFIX):].split("m", 1)[0]
    return int(digits) if digits.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- single probes (nc, ping) -------------------------------------------------------------


def _mesh_of(src: MeshNode, mesh: Mesh | None, dst_ip: str) -> MeshNode:
    if mesh is None:
        raise ValueError("pass mesh= so the destination namespace can be found")
    return mesh.node_for_ip(dst_ip)


def _listening(node: MeshNode, port: int, udp: bool = False) -> bool:
    flag = "-Hlun" if udp else "-Hltn"
    return bool(node.run(["ss", flag, f"sport = :{port}"]).stdout.strip())


def tcp_connect(src: MeshNode, dst_ip: str, port: int, timeout: float = 2.0, *,
                mesh: Mesh) -> bool:
    """Does a TCP handshake from `src` to dst_ip:port complete? (nc both ends)"""
    dst = _mesh_of(src, mesh, dst_ip)
    listener = dst.popen(["nc", "-l", "-n", dst_ip, str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for(lambda: _listening(dst, port)):
            raise RuntimeError(f"nc did not listen on {dst.name}:{port}")
        client = src.run(["nc", "-n", "-z", "-w", str(max(1, round(timeout))), dst_ip,
                          str(port)], timeout=timeout + 3)
        return client.returncode == 0
    finally:
        _kill(listener)


def udp_probe(src: MeshNode, dst_ip: str, port: int, timeout: float = 2.0, *,
              mesh: Mesh) -> bool:
    """Does a UDP datagram from `src` reach a listener on dst_ip:port?"""
    dst = _mesh_of(src, mesh, dst_ip)
    listener = dst.popen(["nc", "-u", "-l", "-n", dst_ip, str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if not wait_for(lambda: _listening(dst, port, udp=True)):
            raise RuntimeError(f"nc did not listen on udp {dst.name}:{port}")
        token = f"probe-{os.getpid()}-{port}"
        src.run(["nc", "-u", "-n", "-w", "1", dst_ip, str(port)], input=token + "\n",
                timeout=timeout + 3)
        return _read_token(listener, token, timeout)
    finally:
        _kill(listener)


def _read_token(proc: subprocess.Popen[str], token: str, timeout: float) -> bool:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
        if token.encode() in seen:
            return True
    return False


def ping(src: MeshNode, dst_ip: str, timeout: float = 2.0) -> bool:
    proc = src.run(["ping", "-n", "-q", "-c", "1", "-W", str(max(1, round(timeout))), dst_ip],
                   timeout=timeout + 3)
    return proc.returncode == 0


@dataclass
class TcpSession:
    """An open TCP connection src -> dst; `send` says if a line still gets through."""

    client: subprocess.Popen[str]
    server: subprocess.Popen[str]

    def send(self, line: str, timeout: float = 2.0) -> bool:
        assert self.client.stdin is not None
        if self.client.poll() is not None:
            return False
        try:
            self.client.stdin.write(line + "\n")
            self.client.stdin.flush()
        except BrokenPipeError:
            return False
        return _read_token(self.server, line, timeout)

    def close(self) -> None:
        _kill(self.client)
        _kill(self.server)


def open_tcp_session(src: MeshNode, dst_ip: str, port: int, *, mesh: Mesh) -> TcpSession:
    """A long-lived nc connection, established and checked once."""
    dst = _mesh_of(src, mesh, dst_ip)
    server = dst.popen(["nc", "-l", "-n", dst_ip, str(port)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if not wait_for(lambda: _listening(dst, port)):
        _kill(server)
        raise RuntimeError(f"nc did not listen on {dst.name}:{port}")
    client = src.popen(["nc", "-n", dst_ip, str(port)], stdin=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    session = TcpSession(client, server)
    if not session.send("hello", timeout=WAIT_SECONDS):
        session.close()
        raise RuntimeError(f"could not open a TCP session {src.name} -> {dst_ip}:{port}")
    return session


# --- batch probes: one server and one client process per node --------------------------

_SERVER = r"""
import json, socket, sys, threading
spec = json.loads(sys.argv[1])
def serve_tcp(s):
    while True:
        c, _ = s.accept(); c.close()
def serve_udp(s):
    while True:
        data, _ = s.recvfrom(2048)
        sys.stdout.write(data.decode(errors="replace").strip() + "\n"); sys.stdout.flush()
for kind, ports in (("tcp", spec["tcp"]), ("udp", spec["udp"])):
    for port in ports:
        kind_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(socket.AF_INET6, kind_type)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        if kind == "tcp":
            s.listen(64)
        serve = serve_tcp if kind == "tcp" else serve_udp
        threading.Thread(target=serve, args=(s,), daemon=True).start()
sys.stdout.write("READY\n"); sys.stdout.flush()
sys.stdin.read()
"""

_CLIENT = r"""
import json, socket, subprocess, sys, threading, time
probes, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
result = {}
def run(pid, proto, ip, port):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    if proto == "tcp":
        try:
            socket.create_connection((ip, port), timeout=timeout).close(); result[pid] = True
        except OSError:
            result[pid] = False
    elif proto == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        for _ in range(3):
            try:
                s.sendto(pid.encode(), (ip, port))
            except OSError:
                pass
            time.sleep(0.15)
        result[pid] = None
    else:
        p = subprocess.run(["ping", "-n", "-q", "-c", "1", "-W", str(max(1, round(timeout))), ip],
                           capture_output=True)
        result[pid] = p.returncode == 0
threads = [threading.Thread(target=run, args=tuple(p)) for p in probes]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(result))
"""


@dataclass(frozen=True, slots=True)
class Probe:
    src: str  # node name
    dst: str  # node name
    proto: str  # "tcp", "udp" or "icmp"
    port: int = 0
    family: int = 4

    def __str__(self) -> str:
        where = f":{self.port}" if self.proto != "icmp" else ""
        return f"{self.src} -> {self.dst}{where}/{self.proto}/v{self.family}"


def probe_all(mesh: Mesh, probes: Sequence[Probe], timeout: float = 1.5) -> dict[Probe, bool]:
    """Run every probe concurrently; True where the packet got through."""
    servers = _start_servers(mesh, probes)
    try:
        tagged = {f"p{i}": p for i, p in enumerate(probes)}
        clients = _start_clients(mesh, tagged, timeout)
        return _collect_outcomes(clients, servers, tagged, timeout)
    finally:
        for proc in servers:
            _kill(proc)


# WireGuard sends a lost handshake initiation again after REKEY_TIMEOUT (5 s): a
# retry shorter than that fails whenever the first initiation of a pair was lost
# (seen at load 7: every probe from one node to another blocked, twice).
RETRY_TIMEOUT = 6.0


def policy_mismatches(mesh: Mesh, probes: Sequence[Probe],
                      expected: Callable[[Probe], bool]) -> list[str]:
    """Probes whose outcome differs from `expected`, after one slower retry.

    Only the suspects of the first pass are probed again, for RETRY_TIMEOUT; a
    real enforcement bug fails both passes.
    """
    seen = probe_all(mesh, probes)
    suspects = [p for p in probes if seen[p] != expected(p)]
    if suspects:
        seen.update(probe_all(mesh, suspects, timeout=RETRY_TIMEOUT))
    return [f"{p}: policy says {'allow' if expected(p) else 'deny'}, "
            f"packets were {'let through' if seen[p] else 'blocked'}"
            for p in suspects if seen[p] != expected(p)]


class _Probed(Protocol):
    @property
    def proto(self) -> str: ...


P = TypeVar("P", bound=_Probed)  # Probe or LanProbe


def _collect_outcomes(clients: list[subprocess.Popen[str]], servers: list[subprocess.Popen[str]],
                      tagged: dict[str, P], timeout: float) -> dict[P, bool]:
    """TCP/ICMP verdicts from the clients; UDP ones from what the servers received."""
    outcome: dict[P, bool] = {}
    for proc in clients:
        out, _ = proc.communicate(timeout=timeout + 10)
        for pid, ok in json.loads(out).items():
            if ok is not None:
                outcome[tagged[pid]] = ok
    if any(p.proto == "udp" for p in tagged.values()):
        time.sleep(0.3)  # the last UDP datagrams are in flight
    received = _stop_servers(servers)
    for pid, probe in tagged.items():
        if probe.proto == "udp":
            outcome[probe] = pid in received
    return outcome


def _start_servers(mesh: Mesh, probes: Sequence[Probe]) -> list[subprocess.Popen[str]]:
    servers = []
    for name in sorted({p.dst for p in probes}):
        spec = {"tcp": sorted({p.port for p in probes if p.dst == name and p.proto == "tcp"}),
                "udp": sorted({p.port for p in probes if p.dst == name and p.proto == "udp"})}
        proc = mesh[name].popen([sys.executable, "-c", _SERVER, json.dumps(spec)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        servers.append(proc)
        assert proc.stdout is not None
        if not _read_token(proc, "READY", WAIT_SECONDS):
            raise RuntimeError(f"probe server on {name} did not start")
    return servers


def _start_clients(mesh: Mesh, tagged: dict[str, Probe],
                   timeout: float) -> list[subprocess.Popen[str]]:
    clients = []
    for name in sorted({p.src for p in tagged.values()}):
        batch = [[pid, p.proto, _address(mesh[p.dst], p.family), p.port]
                 for pid, p in tagged.items() if p.src == name]
        clients.append(mesh[name].popen([sys.executable, "-c", _CLIENT, json.dumps(batch),
                                         str(timeout)], stdout=subprocess.PIPE))
    return clients


def _stop_servers(servers: list[subprocess.Popen[str]]) -> set[str]:
    received: set[str] = set()
    for proc in servers:
        # The server exits when its stdin closes.
        out, _ = proc.communicate(input="", timeout=WAIT_SECONDS)
        received.update(line.strip() for line in out.splitlines())
    return received


def _address(node: MeshNode, family: int) -> str:
    return node.ipv6 if family == 6 else node.ipv4


# --- batch probes from mesh nodes to LAN hosts --------------------------------------------


@dataclass(frozen=True, slots=True)
class LanProbe:
    src: str  # mesh node name
    dst: str  # LAN host name
    proto: str  # "tcp", "udp" or "icmp"
    port: int = 0

    def __str__(self) -> str:
        where = f":{self.port}" if self.proto != "icmp" else ""
        return f"{self.src} -> {self.dst}{where}/{self.proto}"


def probe_lan(mesh: Mesh, lan: LanHosts, probes: Sequence[LanProbe],
              timeout: float = 1.5) -> dict[LanProbe, bool]:
    """Run every probe concurrently, mesh node -> LAN host; True where it got through.

    Destinations are only ever the addresses of `lan`'s hosts (namespaces
    built by `Mesh.add_lan`, inside 198.18.0.0/15).
    """
    for p in probes:
        if ipaddress.ip_address(lan[p.dst].ip) not in LAN_SPACE:
            raise ValueError(f"{p}: {lan[p.dst].ip} is outside {LAN_SPACE}")
    servers: list[subprocess.Popen[str]] = []
    clients: list[subprocess.Popen[str]] = []
    try:
        for name in sorted({p.dst for p in probes}):
            spec = {kind: sorted({p.port for p in probes if p.dst == name and p.proto == kind})
                    for kind in ("tcp", "udp")}
            proc = lan[name].popen([sys.executable, "-c", _SERVER, json.dumps(spec)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            servers.append(proc)
            if not _read_token(proc, "READY", WAIT_SECONDS):
                raise RuntimeError(f"probe server on LAN host {name} did not start")
        tagged = {f"p{i}": p for i, p in enumerate(probes)}
        for name in sorted({p.src for p in probes}):
            batch = [[pid, p.proto, lan[p.dst].ip, p.port]
                     for pid, p in tagged.items() if p.src == name]
            clients.append(mesh[name].popen([sys.executable, "-c", _CLIENT, json.dumps(batch),
                                             str(timeout)], stdout=subprocess.PIPE))
        return _collect_outcomes(clients, servers, tagged, timeout)
    finally:
        for proc in (*clients, *servers):
            _kill(proc)


# --- where packets went: a SYN tap in a router's forward hook ------------------------------


class ForwardTap:
    """Counts TCP SYNs per flow in a namespace's forward hook, ahead of policyc.

    A table of its own (`inet pce_tap`, priority -10, policy accept, counters
    only), so it decides nothing and policyc's table and drift checks never
    see it. A SYN counted here reached the router and was routed for
    forwarding; if it then did not get through, something at priority >= -10
    in the forward hook dropped it.
    """

    TABLE = "pce_tap"

    def __init__(self, netns: str, flows: Iterable[tuple[str, str, int]]) -> None:
        self.netns = netns
        self.flows = {f"t{i}": flow for i, flow in enumerate(flows)}

    def __enter__(self) -> ForwardTap:
        rules = "\n".join(
            f"    ip saddr {src} ip daddr {dst} tcp dport {port} "
            f"tcp flags & (syn | ack) == syn counter comment \"{tag}\""
            for tag, (src, dst, port) in self.flows.items())
        script = (f"table inet {self.TABLE} {{\n  chain tap {{\n"
                  f"    type filter hook forward priority -10; policy accept;\n{rules}\n  }}\n}}\n")
        sh(["ip", "netns", "exec", self.netns, "nft", "-f", "-"], input=script)
        return self

    def syns(self) -> dict[tuple[str, str, int], int]:
        """SYN packets counted so far, per (src, dst, port)."""
        out = sh(["ip", "netns", "exec", self.netns, "nft", "-j", "list", "chain", "inet",
                  self.TABLE, "tap"]).stdout
        counts: dict[tuple[str, str, int], int] = {}
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if not rule or rule.get("comment") not in self.flows:
                continue
            packets = next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
            counts[self.flows[rule["comment"]]] = int(packets)
        return counts

    def __exit__(self, *exc: object) -> None:
        sh(["ip", "netns", "exec", self.netns, "nft", "delete", "table", "inet", self.TABLE],
           check=False)
