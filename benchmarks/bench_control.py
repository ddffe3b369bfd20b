"""Control at scale: 1,000 simulated agents long-polling a real server on loopback.

    python3 benchmarks/bench_control.py [--nodes 1000] [--pushes 3] [--joins 10] [--workers 4]

Agents are the real protocol client without enforcement: each holds its own
X25519 key and its own HTTP client (one connection, as a real node has),
long-polls `/machine/poll` with boxed requests, opens the boxed answer and
verifies the Ed25519 envelope against the pinned signing key before it
counts a netmap as held; like the node agent it offers to take deltas and
applies a verified delta onto the netmap it holds (`--no-deltas`: full
netmaps only). The agents are spread over `--workers` processes
(each an asyncio loop), so what is measured is the server, not one Python
process verifying 1,000 envelopes in a row; the fleet's CPU is reported on
its own line. The server (`policyc control serve`) is a separate process.
Times are CLOCK_MONOTONIC (`time.monotonic`), which all processes share.

Setup writes the registered nodes straight into a fresh state's database
(the registration path is measured by the joins), so the tailnet is
ready when the server starts. Measured:
  - server RSS before the agents and with every agent in an idle long-poll;
  - a policy push that changes every node's filter, with `policyc apply`
    run as a subprocess: time from apply returning to each agent holding the
    verified new netmap (p50/p99/max), and apply's own duration;
  - joins: a new node registers; the register call, and the time from the
    call's start (and from its answer) to each of its peers holding a
    verified netmap with its key.
Each row carries the CPU seconds of the server, the fleet and apply, and
the load average (the machine is shared; wall times alone mislead).
Each join also reports the bytes of poll answers it caused, the server's RSS
after it, and the database's growth (file and WAL).

`--dense` uses `dense_gen`'s tailnet instead (most nodes see most others, so a
join changes every netmap) and measures joins only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from nacl.public import PrivateKey

from policyc.control import init_state
from policyc.control.registry import addresses
from policyc.control.statedir import DATABASE
from policyc.control.store import NodeRecord, Store
from policyc.protocol import (
    NetmapEnvelope,
    PollRequest,
    PollResponse,
    open_response,
    seal_request,
    verify_netmap,
)
from policyc.protocol.delta import apply_delta, verify_delta
from policyc.protocol.messages import KIND_POLL, KIND_REGISTER, PATH_POLL, PATH_REGISTER
from policyc.protocol.sealed import public_key_text

GROUPS, TAGS, USERS_PER_GROUP = 10, 20, 10


def policy_text(port: int) -> str:
    """Group i's users reach tag:t(j) (j % 10 == i) and tag:t(j) reaches group i's users:
    every node is a destination, so changing `port` changes every node's filter."""
    groups = ",\n".join(
        f'    "group:g{g}": [' + ", ".join(f'"u{g}-{u}@example.com"'
                                         for u in range(USERS_PER_GROUP)) + "]"
        for g in range(GROUPS))
    owners = ",\n".join(f'    "tag:t{t}": ["autogroup:admin"]' for t in range(TAGS))
    rules = [f'    {{"action": "accept", "src": ["group:g{t % GROUPS}"], '
             f'"dst": ["tag:t{t}:{port}"]}}' for t in range(TAGS)]
    rules += [f'    {{"action": "accept", "src": ["tag:t{t}"], '
              f'"dst": ["group:g{t % GROUPS}:{port + 1}"]}}' for t in range(TAGS)]
    return ("{\n  \"groups\": {\n" + groups + "\n  },\n  \"tagOwners\": {\n" + owners
            + "\n  },\n  \"acls\": [\n" + ",\n".join(rules) + "\n  ],\n}\n")


@dataclass(frozen=True)
class Identity:
    name: str
    private: bytes  # the X25519 private key (crosses into the worker processes)

    @property
    def key(self) -> str:
        return public_key_text(PrivateKey(self.private))


@dataclass(frozen=True)
class Owner:
    """Who a populated node belongs to, and the routes it serves (approved at once)."""

    user: str | None
    tags: tuple[str, ...]
    routes: tuple[str, ...] = ()


def sparse_owners(count: int) -> list[Owner]:
    """Half user devices, half tagged servers (each node sees ~1/10 of the tailnet)."""
    return [Owner(None, (f"tag:t{(i // 2) % TAGS}",)) if i % 2 == 1 else
            Owner(f"u{(i // 2) % GROUPS}-{(i // 20) % USERS_PER_GROUP}@example.com", ())
            for i in range(count)]


def dense_tailnet(count: int) -> tuple[str, list[Owner]]:
    """`dense_gen`'s policy and its nodes' owners: most nodes see most others."""
    from benchmarks.dense_gen import generate

    text, inventory = generate(nodes=count)
    owners = []
    for node in inventory["nodes"]:
        routes = tuple(node["routes"]) + (("0.0.0.0/0", "::/0") if node["exit_node"] else ())
        owners.append(Owner(node["user"], tuple(node["tags"]), routes))
    return text, owners


def populate(state: Path, owners: list[Owner]) -> list[Identity]:
    """One registered node per owner, written directly."""
    store = Store(state / DATABASE)
    agents = []
    now = int(time.time())
    with store.transaction():
        for i, owner in enumerate(owners):
            agent = Identity(f"n{i}", bytes(PrivateKey.generate()))
            ipv4, ipv6 = addresses(store.next_counter("node_address"))
            store.add_node(NodeRecord(
                id=store.next_counter("node_id"), name=agent.name, node_key=agent.key,
                user=owner.user, tags=owner.tags, ipv4=ipv4, ipv6=ipv6,
                advertised_routes=owner.routes, approved_routes=owner.routes, endpoint=None,
                created_at=now, expires_at=None, netmap_version=0, netmap_digest=""))
            agents.append(agent)
    store.close()
    return agents


def state_bytes(state: Path) -> int:
    """The database on disk: the file and its WAL."""
    return sum(p.stat().st_size for p in state.glob(DATABASE + "*") if p.is_file())


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


STARTED: list[Server] = []  # killed at exit if a measurement fails half way


class Server:
    def __init__(self, state: Path, profile: str | None = None) -> None:
        STARTED.append(self)
        python = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
        self.proc = subprocess.Popen(
            [*python, "-m", "policyc.cli", "control", "serve", "--state", str(state),
             "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
        self.url = ""
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+)", status)
        return int(found.group(1)) / 1024 if found else float("nan")

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


# --- one worker process: a share of the agents on one asyncio loop ----------------------


@dataclass
class Agent:
    name: str
    private: PrivateKey
    key: str
    http: httpx.AsyncClient
    version: int = 0
    reported: frozenset[str] = frozenset()  # watched keys already reported as held
    envelope: NetmapEnvelope | None = None  # the netmap held: a delta's base


class Worker:
    def __init__(self, url: str, box_key: str, signing_key: str, reports: Any,
                 commands: Connection, deltas: bool) -> None:
        self.url, self.box_key, self.signing_key = url, box_key, signing_key
        self.deltas = deltas  # offer to take deltas, as the node agent does
        self.reports, self.commands = reports, commands
        self.watched: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
        # One TLS context for all clients (a plain-http client still builds one per
        # transport, and a thousand of them would dominate start-up).
        self.tls = ssl.create_default_context()

    def agent(self, identity: Identity) -> Agent:
        private = PrivateKey(identity.private)
        http = httpx.AsyncClient(base_url=self.url, timeout=120.0, verify=self.tls,
                                 trust_env=False, limits=httpx.Limits(max_connections=1))
        return Agent(identity.name, private, public_key_text(private), http)

    async def poll_once(self, agent: Agent) -> None:
        offer = self.deltas and agent.envelope is not None
        sealed = seal_request(agent.private, self.box_key, KIND_POLL,
                              PollRequest(agent.version, offer).to_json())
        response = await agent.http.post(PATH_POLL, json=sealed.wire)
        if response.status_code != 200:
            raise RuntimeError(f"poll refused: {response.status_code} {response.text[:200]}")
        body = open_response(agent.private, self.box_key, response.json(), sealed, KIND_POLL)
        answer = PollResponse.from_json(body)
        if not answer.changed:
            return
        if answer.delta is not None and agent.envelope is not None:
            delta = verify_delta(answer.delta, self.signing_key, node_key=agent.key,
                                 base=agent.version)
            envelope = apply_delta(agent.envelope, delta)
        else:
            envelope = verify_netmap(answer.netmap, self.signing_key, node_key=agent.key,
                                     newer_than=agent.version)
        held = time.monotonic()
        agent.version, agent.envelope = envelope.version, envelope
        self.reports.put(("held", agent.name, envelope.version, held))
        self.reports.put(("bytes", agent.name, len(response.content), held))
        if self.watched:
            peers = {p.key for p in envelope.netmap.peers}
            for key in (self.watched & peers) - agent.reported:
                self.reports.put(("has", agent.name, key, held))
            agent.reported = frozenset(agent.reported | (self.watched & peers))

    async def run(self, agent: Agent) -> None:
        while True:
            try:
                await self.poll_once(agent)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
            except Exception as err:  # a refused poll: say so, keep the agent alive
                self.reports.put(("error", agent.name, repr(err), time.monotonic()))
                await asyncio.sleep(0.5)

    def start(self, identity: Identity) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(self.run(self.agent(identity))))

    async def main(self, identities: list[Identity]) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def handle(command: tuple[Any, ...]) -> None:
            if command[0] == "watch":
                self.watched.add(command[1])
            elif command[0] == "add":
                self.start(command[1])
            else:
                stop.set()

        def read_commands() -> None:
            while True:
                try:
                    command = self.commands.recv()
                except EOFError:
                    command = ("stop",)
                loop.call_soon_threadsafe(handle, command)
                if command[0] == "stop":
                    return

        threading.Thread(target=read_commands, daemon=True).start()
        for identity in identities:
            self.start(identity)
        await stop.wait()
        for task in self.tasks:
            task.cancel()


def worker_main(url: str, box_key: str, signing_key: str, identities: list[Identity],
                reports: Any, commands: Connection, deltas: bool) -> None:
    asyncio.run(Worker(url, box_key, signing_key, reports, commands, deltas).main(identities))


# --- the fleet as the coordinator sees it --------------------------------------------------


class Fleet:
    def __init__(self, url: str, state: Path, agents: list[Identity], workers: int,
                 deltas: bool) -> None:
        self.url = url
        self.box_key = (state / "box.pub").read_text().strip()
        self.signing_key = (state / "signing.pub").read_text().strip()
        context = multiprocessing.get_context("spawn")
        self.reports = context.Queue()
        self.lock = threading.Lock()
        self.version: dict[str, int] = defaultdict(int)
        self.held: dict[str, dict[int, float]] = defaultdict(dict)  # name -> version -> t
        self.has: dict[str, dict[str, float]] = defaultdict(dict)  # key -> name -> t
        self.errors: list[str] = []
        self.received = 0  # bytes of the poll answers that carried a netmap
        self.procs: list[Any] = []
        self.commands: list[Connection] = []
        for i in range(workers):
            ours, theirs = context.Pipe()
            proc = context.Process(target=worker_main, daemon=True, args=(
                url, self.box_key, self.signing_key, agents[i::workers], self.reports, theirs,
                deltas))
            proc.start()
            self.procs.append(proc)
            self.commands.append(ours)
        self.next_worker = 0
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        while True:
            kind, name, what, when = self.reports.get()
            with self.lock:
                if kind == "held":
                    self.version[name] = max(self.version[name], what)
                    self.held[name][what] = when
                elif kind == "has":
                    self.has[what][name] = when
                elif kind == "bytes":
                    self.received += what
                else:
                    self.errors.append(f"{name}: {what}")

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(p.pid) for p in self.procs)

    def watch(self, key: str) -> None:
        for conn in self.commands:
            conn.send(("watch", key))

    def add(self, identity: Identity) -> None:
        self.commands[self.next_worker].send(("add", identity))
        self.next_worker = (self.next_worker + 1) % len(self.commands)

    def own_peers(self, identity: Identity) -> set[str]:
        """The peers of a registered node, from its own verified netmap (a netmap lists
        the nodes that may reach it or that it may reach: the same set names it)."""
        private = PrivateKey(identity.private)
        sealed = seal_request(private, self.box_key, KIND_POLL, PollRequest(0).to_json())
        response = httpx.post(self.url + PATH_POLL, json=sealed.wire, timeout=120.0)
        response.raise_for_status()
        answer = PollResponse.from_json(open_response(private, self.box_key, response.json(),
                                                      sealed, KIND_POLL))
        envelope = verify_netmap(answer.netmap, self.signing_key, node_key=identity.key)
        return {p.name for p in envelope.netmap.peers}

    def register(self, identity: Identity, auth_key: str) -> None:
        """The newcomer's registration, from this process (the real client calls)."""
        private = PrivateKey(identity.private)
        sealed = seal_request(private, self.box_key, KIND_REGISTER,
                              {"auth_key": auth_key, "hostname": identity.name, "routes": []})
        response = httpx.post(self.url + PATH_REGISTER, json=sealed.wire, timeout=600.0)
        response.raise_for_status()
        open_response(private, self.box_key, response.json(), sealed, KIND_REGISTER)

    def stop(self) -> None:
        for conn in self.commands:
            conn.send(("stop",))
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms")


def wait_until(condition: Callable[[], bool], timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children: the apply runs
    return usage.ru_utime + usage.ru_stime


@dataclass
class Push:
    changed: int
    apply_wall: float
    apply_cpu: float
    after_return: list[float]
    after_start: list[float]
    server_cpu: float
    fleet_cpu: float
    load: str


def measure(args: argparse.Namespace, tmp: Path) -> None:
    state = tmp / "state"
    if args.dense:
        text, owners = dense_tailnet(args.nodes)
    else:
        text, owners = policy_text(1000), sparse_owners(args.nodes)
    init_state(state, text)
    agents = populate(state, owners)
    started = time.monotonic()
    server = Server(state, args.profile_server)
    print(f"server up with {args.nodes} nodes in {time.monotonic() - started:.1f} s, "
          f"{server.cpu_seconds():.1f} CPU s (compile every netmap at start); {load()}")
    rss_idle = server.rss_mib()
    fleet = Fleet(server.url, state, agents, args.workers, not args.no_deltas)
    names = [a.name for a in agents]
    ok = wait_until(lambda: all(fleet.version[n] for n in names))
    print(f"every agent holds its first netmap: {ok} ({time.monotonic() - started:.1f} s)")
    token = (state / "admin.token").read_text().strip()
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                         timeout=120)
    wait_until(lambda: admin.get("/healthz").json().get("long_polls", 0) >= len(agents), 60)
    time.sleep(1.0)
    rss_polls = server.rss_mib()
    polls = admin.get("/healthz").json().get("long_polls")
    print(f"RSS: {rss_idle:.0f} MiB before agents, {rss_polls:.0f} MiB with {polls} idle "
          f"long-polls; {load()}")

    env = dict(os.environ, POLICYC_TOKEN=token)
    pushes: list[Push] = []
    for round_no in range(args.pushes):
        with fleet.lock:
            before = {n: fleet.version[n] for n in names}
        path = tmp / f"policy{round_no}.hujson"
        path.write_text(policy_text(2000 + 10 * round_no))
        server_cpu, fleet_cpu, apply_cpu = server.cpu_seconds(), fleet.cpu_seconds(), \
            children_cpu()
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "policyc.cli", "apply", str(path),
                               "--server", server.url], env=env, capture_output=True, text=True)
        returned = time.monotonic()
        assert done.returncode == 0, done.stderr
        found = re.search(r"\((\d+) node netmap", done.stderr)
        assert found is not None, done.stderr
        changed = int(found.group(1))

        def pushed(snapshot: dict[str, int] = before, count: int = changed) -> bool:
            with fleet.lock:
                return sum(fleet.version[n] > snapshot[n] for n in names) >= count

        wait_until(pushed)
        with fleet.lock:
            held = [min(t for v, t in fleet.held[n].items() if v > before[n])
                    for n in names if fleet.version[n] > before[n]]
        push = Push(changed, returned - t0, children_cpu() - apply_cpu,
                    [max(0.0, t - returned) for t in held], [t - t0 for t in held],
                    server.cpu_seconds() - server_cpu, fleet.cpu_seconds() - fleet_cpu, load())
        pushes.append(push)
        print(f"push {round_no + 1}: apply {push.apply_wall:.2f} s ({push.apply_cpu:.1f} CPU s), "
              f"{changed} netmaps changed, {len(held)} agents verified; after apply returned: "
              f"{percentiles(push.after_return)}; after apply started: "
              f"{percentiles(push.after_start)}; CPU s: server {push.server_cpu:.1f}, fleet "
              f"{push.fleet_cpu:.1f}; {push.load}", flush=True)
        time.sleep(1.0)  # let the re-polls settle

    # The same push as a bare PUT: the server's part without apply's own local work
    # (process start, load, tests and the access diff at 1,000 nodes).
    direct: list[Push] = []
    for round_no in range(args.direct_pushes):
        with fleet.lock:
            before = {n: fleet.version[n] for n in names}
        live = admin.get("/api/v1/policy")
        server_cpu, fleet_cpu = server.cpu_seconds(), fleet.cpu_seconds()
        t0 = time.monotonic()
        answer = admin.put("/api/v1/policy", json={"policy": policy_text(3000 + 10 * round_no)},
                           headers={"If-Match": live.headers["etag"]})
        returned = time.monotonic()
        assert answer.status_code == 200, answer.text
        changed = int(answer.json()["netmaps_changed"])

        def reached(snapshot: dict[str, int] = before, count: int = changed) -> bool:
            with fleet.lock:
                return sum(fleet.version[n] > snapshot[n] for n in names) >= count

        wait_until(reached)
        with fleet.lock:
            held = [min(t for v, t in fleet.held[n].items() if v > before[n])
                    for n in names if fleet.version[n] > before[n]]
        push = Push(changed, returned - t0, 0.0, [max(0.0, t - returned) for t in held],
                    [t - t0 for t in held], server.cpu_seconds() - server_cpu,
                    fleet.cpu_seconds() - fleet_cpu, load())
        direct.append(push)
        print(f"direct PUT {round_no + 1}: answered in {push.apply_wall:.2f} s, {changed} "
              f"netmaps changed, {len(held)} agents verified; after the PUT was sent: "
              f"{percentiles(push.after_start)}; CPU s: server {push.server_cpu:.1f}, fleet "
              f"{push.fleet_cpu:.1f}; {push.load}", flush=True)
        time.sleep(1.0)

    join_calls: list[float] = []
    from_start: list[float] = []
    from_answer: list[float] = []
    join_cpu: list[tuple[float, float]] = []
    join_bytes: list[int] = []
    join_rss: list[float] = []
    db_before = state_bytes(state)
    for j in range(args.joins):
        tagged = j % 2 == 1
        body: dict[str, Any] = {"tags": [f"tag:t{j % TAGS}"]} if tagged else \
            {"user": f"user{j}@example.com" if args.dense else f"u{j % GROUPS}-0@example.com"}
        key = admin.post("/api/v1/authkeys", json=body).json()["key"]
        newcomer = Identity(f"join{j}", bytes(PrivateKey.generate()))
        fleet.watch(newcomer.key)
        time.sleep(0.2)  # the watch reaches every worker before the join
        server_cpu, fleet_cpu = server.cpu_seconds(), fleet.cpu_seconds()
        with fleet.lock:
            received = fleet.received
        t0 = time.monotonic()
        fleet.register(newcomer, key)
        registered = time.monotonic()
        join_calls.append(registered - t0)
        peers = fleet.own_peers(newcomer) if args.dense else _peer_names(admin, newcomer.name)

        def joined(group: set[str] = peers, key: str = newcomer.key) -> bool:
            with fleet.lock:
                return group <= set(fleet.has[key])

        ok = wait_until(joined, args.join_timeout)
        join_cpu.append((server.cpu_seconds() - server_cpu, fleet.cpu_seconds() - fleet_cpu))
        time.sleep(0.5)  # the last answers' byte counts reach the coordinator
        with fleet.lock:
            join_bytes.append(fleet.received - received)
        join_rss.append(server.rss_mib())
        with fleet.lock:
            times = [fleet.has[newcomer.key][n] for n in peers if n in fleet.has[newcomer.key]]
        from_start += [t - t0 for t in times]
        from_answer += [max(0.0, t - registered) for t in times]
        print(f"join {j + 1}: {len(peers)} peers, register {registered - t0:.2f} s, all peers "
              f"hold the key: {ok}, last at {max(times, default=t0) - t0:.2f} s after the call "
              f"started; CPU s: server {join_cpu[-1][0]:.2f}, fleet {join_cpu[-1][1]:.2f}; "
              f"{join_bytes[-1] / 1e6:.1f} MB of poll answers; server RSS "
              f"{join_rss[-1]:.0f} MiB; {load()}; agent errors: {fleet.errors[-3:]}",
              flush=True)
        fleet.add(newcomer)
        names.append(newcomer.name)
        time.sleep(0.5)
    db_after = state_bytes(state)
    fleet.stop()
    server.stop()
    admin.close()
    print()
    print("| measure | nodes | result |")
    print("|---|---:|---|")
    print(f"| server RSS, no agents / {polls} idle long-polls | {args.nodes} | "
          f"{rss_idle:.0f} MiB / {rss_polls:.0f} MiB |")
    for push in pushes:
        print(f"| policy push: `policyc apply` run (subprocess), wall / CPU | {push.changed} | "
              f"{push.apply_wall:.2f} s / {push.apply_cpu:.1f} s |")
        print(f"| policy push: apply returned -> agent holds verified netmap | {push.changed} | "
              f"{percentiles(push.after_return)} |")
        print(f"| policy push: apply started -> agent holds verified netmap | {push.changed} | "
              f"{percentiles(push.after_start)} |")
        print(f"| policy push: CPU s, server / fleet ({args.workers} processes); load | "
              f"{push.changed} | {push.server_cpu:.1f} / {push.fleet_cpu:.1f}; {push.load} |")
    for push in direct:
        print(f"| policy push: bare PUT sent -> answered | {push.changed} | "
              f"{push.apply_wall:.2f} s |")
        print(f"| policy push: bare PUT sent -> agent holds verified netmap | {push.changed} | "
              f"{percentiles(push.after_start)} |")
        print(f"| policy push (bare PUT): CPU s, server / fleet; load | {push.changed} | "
              f"{push.server_cpu:.1f} / {push.fleet_cpu:.1f}; {push.load} |")
    print(f"| join: register call | {args.nodes} | {percentiles(join_calls)} |")
    print(f"| join: call started -> each peer holds the key | {args.nodes} | "
          f"{percentiles(from_start)} (n = {len(from_start)}) |")
    print(f"| join: answer -> each peer holds the key | {args.nodes} | "
          f"{percentiles(from_answer)} |")
    if join_cpu:
        print(f"| join: CPU s per join, server / fleet (mean) | {args.nodes} | "
              f"{statistics.mean(c[0] for c in join_cpu):.2f} / "
              f"{statistics.mean(c[1] for c in join_cpu):.2f} |")
        print(f"| join: poll answers sent per join (mean) | {args.nodes} | "
              f"{statistics.mean(join_bytes) / 1e6:.2f} MB |")
        print(f"| join: server RSS after the joins / database growth per join | "
              f"{args.nodes} | {join_rss[-1]:.0f} MiB / "
              f"{(db_after - db_before) / len(join_cpu) / 1e3:.1f} kB |")


def _peer_names(admin: httpx.Client, name: str) -> set[str]:
    """The nodes whose netmap lists `name` as a peer (compiled here from control's data)."""
    from policyc.compiler import compile_policy, load_inventory_text
    from policyc.policy.load import load_policy_text

    nodes = admin.get("/api/v1/nodes").json()["nodes"]
    policy, _ = load_policy_text(admin.get("/api/v1/policy").json()["policy"])
    fields = ("name", "user", "tags", "ips", "key", "routes", "exit_node", "endpoint")
    inventory, _ = load_inventory_text(json.dumps(
        {"nodes": [{k: n[k] for k in fields} for n in nodes]}))
    netmaps = compile_policy(policy, inventory).netmaps
    return {n for n, m in netmaps.items() if any(p.name == name for p in m.peers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--direct-pushes", type=int, default=2,
                        help="pushes as a bare PUT (no apply process)")
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--dense", action="store_true",
                        help="dense_gen's tailnet (most nodes see most others) instead of "
                        "the sparse one; joins only (the pushes change the sparse policy)")
    parser.add_argument("--no-deltas", action="store_true",
                        help="agents do not offer to take deltas (every answer is a full "
                        "netmap, as before deltas)")
    parser.add_argument("--join-timeout", type=float, default=60.0,
                        help="seconds to wait for every peer to hold a newcomer's key")
    parser.add_argument("--workers", type=int, default=4,
                        help="processes the simulated agents are spread over")
    parser.add_argument("--profile-server", metavar="FILE",
                        help="run the server under cProfile, stats written to FILE at exit")
    args = parser.parse_args()
    if args.dense:
        args.pushes = args.direct_pushes = 0
    with tempfile.TemporaryDirectory() as tmp:
        try:
            measure(args, Path(tmp))
        finally:
            for server in STARTED:
                if server.proc.poll() is None:
                    server.proc.kill()
                    server.proc.wait(60)


if __name__ == "__main__":
    main()
