"""A tailnet run by policyc itself: a control server in the hub namespace and node
agents (`policyc node up`) in node namespaces, built on harness.Mesh.

    with AgentTailnet.build(NODES, POLICY) as net:   # NODES: name -> "user@x" or ("tag:a",)
        net.control.apply(OTHER_POLICY)
        net.wait_converged()

Control listens on the hub's bridge address (198.18.0.1); every agent runs inside
its node's namespace with its own state directory and creates its WireGuard
interface itself (wireguard-go). Admin commands (`policyc control ...`,
`policyc apply`) run in the hub namespace. Every process is started here, kept by
its Popen and stopped by PID; Mesh.close kills whatever is left in the namespaces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness

from policyc.compiler.nodes import Inventory, Node
from policyc.meshnode.client import MAX_RESPONSE_BYTES

ROOT = Path(__file__).resolve().parents[2]
CONTROL_PORT = 8080
POLL_TIMEOUT = 20.0  # control's long-poll timeout in these tests
CONVERGE_SECONDS = 30.0
Owner = str | tuple[str, ...]  # a login, or the tags of a tagged node


def policyc_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "policyc.cli", *args]


def _env() -> dict[str, str]:
    # This checkout's policyc, whatever is installed.
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@dataclass
class Control:
    hub: str
    state: Path
    log: Path
    token: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{harness.HUB_ADDRESS}:{CONTROL_PORT}"

    def _hub(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hub, *argv]

    def init(self, policy: Path) -> None:
        proc = subprocess.run(policyc_argv("control", "init", "--state", str(self.state),
                                           "--policy", str(policy)),
                              capture_output=True, text=True, env=_env(), timeout=60,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"control init failed: {proc.stderr}")
        self.token = proc.stdout.strip()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self._hub(policyc_argv("control", "serve", "--state", str(self.state),
                                       "--listen", f"{harness.HUB_ADDRESS}:{CONTROL_PORT}",
                                       "--poll-timeout", str(POLL_TIMEOUT))),
                env=_env(), stdout=log, stderr=log)
        if not harness.wait_for(self.healthy, timeout=30.0, step=0.1):
            raise RuntimeError(f"control did not come up: {self.log.read_text()[-2000:]}")

    def healthy(self) -> bool:
        fetch = f"import urllib.request; urllib.request.urlopen('{self.url}/healthz', timeout=2)"
        probe = harness.sh(self._hub([sys.executable, "-c", fetch]), check=False, timeout=10)
        return probe.returncode == 0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
        self.process = None

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`policyc ARGS --server URL` in the hub, with the admin token."""
        proc = subprocess.run(self._hub(policyc_argv(*args, "--server", self.url)),
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**_env(), "POLICYC_TOKEN": self.token})
        if check and proc.returncode != 0:
            raise RuntimeError(f"policyc {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stdout}{proc.stderr}")
        return proc

    def authkey(self, owner: Owner, *, cli: bool = False) -> str:
        """A single-use pre-auth key for a user or tags (`cli`: through the CLI)."""
        if cli:
            args = ["--user", owner] if isinstance(owner, str) else \
                [a for tag in owner for a in ("--tag", tag)]
            return self.admin("control", "authkey", "create", *args).stdout.strip()
        body = {"user": owner} if isinstance(owner, str) else {"tags": list(owner)}
        return str(self.api("POST", "/api/v1/authkeys", body)["key"])

    def api(self, method: str, path: str, body: Any = None,
            headers: Mapping[str, str] | None = None) -> Any:
        """One admin API call from a thread inside the hub namespace (in-process).

        Loops and fixtures use this: a `policyc` subprocess costs seconds of
        interpreter start on a loaded machine. The CLI is exercised where it
        is what a test is about.
        """
        import httpx

        from policyc.enforcer.netns import run_in_netns

        def call() -> Any:
            answer = httpx.request(method, f"{self.url}{path}", json=body, timeout=30,
                                   headers={"Authorization": f"Bearer {self.token}",
                                            **(headers or {})})
            answer.raise_for_status()
            return answer.json()

        return run_in_netns(self.hub, call)

    def apply(self, policy: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.admin("apply", str(policy), check=check)

    def nodes(self) -> list[dict[str, Any]]:
        """`policyc control nodes list --json`: every registered node."""
        found: list[dict[str, Any]] = json.loads(
            self.admin("control", "nodes", "list", "--json").stdout)["nodes"]
        return found

    def netmap_versions(self) -> dict[str, int]:
        """Each node's current netmap version, read from the admin API in the hub.

        """
        return {n["name"]: int(n["netmap_version"])
                for n in self.api("GET", "/api/v1/nodes")["nodes"] if not n["expired"]}


@dataclass
class Agent:
    node: harness.MeshNode
    state: Path
    log: Path
    hostname: str
    process: subprocess.Popen[bytes] | None = None

    def start(self, server: str, auth_key: str | None = None, *extra: str) -> None:
        argv = policyc_argv("node", "up", "--server", server, "--iface", self.node.iface,
                            "--state", str(self.state), "--listen-port", str(harness.WG_PORT),
                            "--endpoint", self.node.endpoint, "--hostname", self.hostname,
                            "-v", *extra)
        if auth_key:
            argv += ["--auth-key", auth_key]
        with self.log.open("ab") as log:
            self.process = self.node.popen(argv, env=_env(), stdout=log, stderr=log)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=20)
        self.process = None
        return code

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, Any]:
        """`policyc node status --json` (the CLI: socket, else the cache)."""
        proc = harness.sh(policyc_argv("node", "status", "--state", str(self.state), "--json"),
                          timeout=20)
        value: dict[str, Any] = json.loads(proc.stdout)
        return value

    def quick_status(self) -> dict[str, Any]:
        """The running agent's status over its socket, in-process ({} if none answers)."""
        from policyc.meshnode.localapi import ask
        from policyc.meshnode.state import StateDir

        return ask(StateDir(self.state).socket, {"op": "status"}) or {}

    def version(self) -> int:
        return int(self.quick_status().get("netmap_version") or 0)

    def whois(self, address: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(policyc_argv("node", "whois", address, "--state", str(self.state),
                                           "--json"),
                              capture_output=True, text=True, env=_env(), timeout=20,
                              check=False)


@dataclass
class AgentTailnet:
    mesh: harness.Mesh
    control: Control
    agents: dict[str, Agent]
    owners: dict[str, Owner]
    workdir: Path
    policy: Path
    _inventory: Inventory | None = None

    @classmethod
    def build(cls, owners: Mapping[str, Owner], policy: Path) -> AgentTailnet:
        placeholders = Inventory.of([Node(name, None, (), ()) for name in owners])
        mesh = harness.Mesh.build(placeholders, wireguard=False)
        workdir = Path(tempfile.mkdtemp(prefix="policyc-agents-"))
        control = Control(mesh.hub, workdir / "control", workdir / "control.log")
        net = cls(mesh, control, {}, dict(owners), workdir, policy)
        try:
            control.init(policy)
            control.start()
            for name in owners:
                net.join(name)
            net.wait_joined(owners)
            net.wait_converged()
        except BaseException:
            net.close()
            raise
        return net

    def join(self, name: str, owner: Owner | None = None, extra: Sequence[str] = ()) -> Agent:
        """Start `policyc node up` for mesh node `name` (made here if it is new);
        `extra`: more `node up` arguments (e.g. --advertise-routes)."""
        if owner is not None:
            self.owners[name] = owner
        if name not in self.mesh.nodes:
            self.mesh.add_node(Node(name, None, (), ()), wireguard=False)
        agent = Agent(self.mesh[name], self.workdir / f"{name}.state",
                      self.workdir / f"{name}.log", name)
        self.agents[name] = agent
        agent.start(self.control.url, self.control.authkey(self.owners[name]), *extra)
        return agent

    def wait_joined(self, names: Iterable[str]) -> None:
        for name in names:
            agent = self.agents[name]
            if not harness.wait_for(lambda a=agent: bool(a.quick_status().get("addresses")),
                                    timeout=CONVERGE_SECONDS, step=0.1):
                raise RuntimeError(f"{name} did not join: {self.log_tail(name)}")
            status = agent.quick_status()
            agent.node.addresses = tuple(status["addresses"])
            agent.node.public_key = str(status.get("public_key") or "")

    def registered(self) -> dict[str, dict[str, Any]]:
        return {n["name"]: n for n in self.control.nodes()}

    def inventory(self) -> Inventory:
        """What control has registered, as an inventory (for the reference evaluator).

        While control is down, the last one read (nothing can have changed).
        """
        from policyc.compiler.inventory import load_inventory_text

        if self.control.process is None and self._inventory is not None:
            return self._inventory

        fields = ("name", "user", "tags", "ips", "key", "routes", "exit_node", "endpoint")
        text = json.dumps({"nodes": [{k: n.get(k) for k in fields}
                                     for n in self.registered().values() if not n["expired"]]})
        inventory, diags = load_inventory_text(text, "registered.json")
        assert inventory is not None and not diags.has_errors, [str(d) for d in diags]
        self._inventory = inventory
        return inventory

    def wait_converged(self, names: Iterable[str] | None = None,
                       timeout: float = CONVERGE_SECONDS) -> None:
        """Every agent enforces the netmap version control holds for it."""
        chosen = list(names) if names is not None else list(self.agents)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            versions = self.control.netmap_versions()
            lagging = [name for name in chosen
                       if self.agents[name].version() < versions.get(name, 1 << 60)]
            if not lagging:
                return
            time.sleep(0.05)
        raise RuntimeError(f"agents did not converge: {lagging}")

    def log_tail(self, name: str) -> str:
        path = self.agents[name].log if name in self.agents else self.control.log
        with contextlib.suppress(OSError):
            return path.read_text()[-3000:]
        return ""

    def close(self) -> None:
        for agent in self.agents.values():
            with contextlib.suppress(Exception):
                agent.stop(signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.control.kill()
        self.mesh.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> AgentTailnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replace_inventory(mesh: harness.Mesh, inventory: Inventory) -> None:
    """Let harness lookups (node_for_ip, probes) see the registered addresses."""
    mesh.inventory = dataclasses.replace(inventory)


# --- a meddling proxy between one agent and control ------------------------------------

_PROXY = r"""
import base64, http.client, http.server, json, sys, threading
listen_port, upstream, mode_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
huge = int(sys.argv[4])
host, port = upstream.rsplit(":", 1)
recorded = {}
class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def relay(self, method):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/machine/poll" and open(mode_file).read().strip() == "forbid":
            return self.answer(403, json.dumps({"error": "not-registered",
                                                "detail": "forged"}).encode())
        if self.path == "/machine/poll" and open(mode_file).read().strip() == "huge":
            self.send_response(200)  # an answer over the agent's limit, announced as such
            self.send_header("Content-Length", str(huge))
            self.end_headers()
            self.wfile.write(b" " * 65536)
            self.close_connection = True
            return
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        conn.request(method, self.path, body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        data, status = answer.read(), answer.status
        mode = open(mode_file).read().strip()
        if self.path == "/machine/poll" and status == 200:
            if "first" not in recorded:
                recorded["first"] = data
            if mode == "tamper":
                wire = json.loads(data)
                box = bytearray(base64.b64decode(wire["box"]))
                box[len(box) // 2] ^= 0x01
                wire["box"] = base64.b64encode(bytes(box)).decode()
                data = json.dumps(wire).encode()
            elif mode == "replay":
                data = recorded["first"]
        self.answer(status, data)
    def answer(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.relay("GET")
    def do_POST(self):
        self.relay("POST")
server = http.server.ThreadingHTTPServer(("127.0.0.1", listen_port), Proxy)
server.daemon_threads = True
print("READY", flush=True)
server.serve_forever()
"""


@dataclass
class MeddlingProxy:
    """An HTTP proxy in a node's namespace, on 127.0.0.1: `mode` is "pass", "tamper"
    (flip one byte inside each poll answer's box), "replay" (answer every poll with
    the first poll answer it saw), "forbid" (answer every poll with a bare HTTP 403
    "not-registered", as anyone on the path could) or "huge" (a poll answer whose
    Content-Length is one byte over the agent's limit)."""

    node: harness.MeshNode
    mode_file: Path
    port: int = 18080
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, upstream: str) -> None:
        self.set("pass")
        self.process = self.node.popen([sys.executable, "-c", _PROXY, str(self.port),
                                        upstream, str(self.mode_file),
                                        str(MAX_RESPONSE_BYTES + 1)],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "READY":
            raise RuntimeError("the proxy did not start")

    def set(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
