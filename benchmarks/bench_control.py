"""Control at scale: 1,000 simulated agents long-polling a real server on loopback.

    python3 benchmarks/bench_control.py [--nodes 1000] [--joins 10]

Agents are the real protocol client without enforcement: each holds its own
X25519 key, long-polls `/machine/poll` with boxed requests, opens the boxed
answer and verifies the Ed25519 envelope against the pinned signing key
before it counts a netmap as held. All agents run in this process on one
asyncio loop; the server (`policyc control serve`) is a separate process.

Setup writes the registered nodes straight into a fresh state's database
(the registration path is measured by the joins), so the tailnet is
ready when the server starts. Measured:
  - server RSS before the agents and with every agent in an idle long-poll;
  - a policy push that changes every node's filter, with `policyc apply`
    run as a subprocess: time from apply returning to each agent holding the
    verified new netmap (p50/p99/max), and apply's own duration;
  - joins: a new node registers; time from its registration answer to each
    of its peers holding a netmap with its key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from nacl.public import PrivateKey

from policyc.control import init_state
from policyc.control.registry import addresses
from policyc.control.statedir import DATABASE
from policyc.control.store import NodeRecord, Store
from policyc.protocol import PollRequest, PollResponse, open_response, seal_request, verify_netmap
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


@dataclass
class Agent:
    private: PrivateKey
    name: str
    version: int = 0
    peer_keys: frozenset[str] = frozenset()
    held_at: dict[int, float] = field(default_factory=dict)  # version -> when verified

    @property
    def key(self) -> str:
        return public_key_text(self.private)


def populate(state: Path, count: int) -> list[Agent]:
    """`count` registered nodes (half user devices, half tagged servers), written directly."""
    store = Store(state / DATABASE)
    agents = []
    now = int(time.time())
    with store.transaction():
        for i in range(count):
            agent = Agent(PrivateKey.generate(), f"n{i}")
            ipv4, ipv6 = addresses(store.next_counter("node_address"))
            tagged = i % 2 == 1
            g = (i // 2) % GROUPS
            store.add_node(NodeRecord(
                id=store.next_counter("node_id"), name=agent.name, node_key=agent.key,
                user=None if tagged else f"u{g}-{(i // 20) % USERS_PER_GROUP}@example.com",
                tags=(f"tag:t{(i // 2) % TAGS}",) if tagged else (), ipv4=ipv4, ipv6=ipv6,
                advertised_routes=(), approved_routes=(), endpoint=None, created_at=now,
                expires_at=None, netmap_version=0, netmap_digest=""))
            agents.append(agent)
    store.close()
    return agents


class Server:
    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "policyc.cli", "control", "serve", "--state", str(state),
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
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


class Fleet:
    def __init__(self, url: str, state: Path, agents: list[Agent]) -> None:
        self.url = url
        self.box_key = (state / "box.pub").read_text().strip()
        self.signing_key = (state / "signing.pub").read_text().strip()
        self.agents = agents
        self.polling = 0
        self.errors: list[str] = []
        self.http = httpx.AsyncClient(base_url=url, timeout=120.0, limits=httpx.Limits(
            max_connections=len(agents) + 64, max_keepalive_connections=len(agents) + 64))

    async def poll_once(self, agent: Agent) -> bool:
        sealed = seal_request(agent.private, self.box_key, KIND_POLL,
                              PollRequest(agent.version).to_json())
        self.polling += 1
        try:
            response = await self.http.post(PATH_POLL, json=sealed.wire)
        finally:
            self.polling -= 1
        body = open_response(agent.private, self.box_key, response.json(), sealed, KIND_POLL)
        answer = PollResponse.from_json(body)
        if not answer.changed:
            return False
        envelope = verify_netmap(answer.netmap, self.signing_key, node_key=agent.key,
                                 newer_than=agent.version)
        agent.version = envelope.version
        agent.peer_keys = frozenset(p.key for p in envelope.netmap.peers)
        agent.held_at[envelope.version] = time.perf_counter()
        return True

    async def run(self, agent: Agent, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once(agent)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
            except Exception as err:  # a refused poll: say so, keep the agent alive
                self.errors.append(f"{agent.name}: {err!r}")
                await asyncio.sleep(0.5)

    async def register(self, agent: Agent, auth_key: str) -> None:
        sealed = seal_request(agent.private, self.box_key, KIND_REGISTER,
                              {"auth_key": auth_key, "hostname": agent.name, "routes": []})
        response = await self.http.post(PATH_REGISTER, json=sealed.wire)
        response.raise_for_status()
        open_response(agent.private, self.box_key, response.json(), sealed, KIND_REGISTER)


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms")


async def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)


async def measure(args: argparse.Namespace, tmp: Path) -> None:
    state = tmp / "state"
    init_state(state, policy_text(1000))
    agents = populate(state, args.nodes)
    started = time.perf_counter()
    server = Server(state)
    print(f"server up with {args.nodes} nodes in {time.perf_counter() - started:.1f} s "
          "(compile + sign every netmap at start)")
    rss_idle = server.rss_mib()
    fleet = Fleet(server.url, state, agents)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(fleet.run(a, stop)) for a in agents]
    await wait_until(lambda: all(a.version for a in agents))
    await wait_until(lambda: fleet.polling == len(agents), 30)
    await asyncio.sleep(1.0)
    rss_polls = server.rss_mib()
    print(f"RSS: {rss_idle:.0f} MiB before agents, {rss_polls:.0f} MiB with "
          f"{fleet.polling} idle long-polls")

    token = (state / "admin.token").read_text().strip()
    env = dict(os.environ, POLICYC_TOKEN=token)
    push_rows = []
    for round_no in range(args.pushes):
        before = {a.name: a.version for a in agents}
        path = tmp / f"policy{round_no}.hujson"
        path.write_text(policy_text(2000 + 10 * round_no))
        t0 = time.perf_counter()
        server_cpu, fleet_cpu = server.cpu_seconds(), time.process_time()
        done = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "policyc.cli", "apply", str(path), "--server", server.url],
            env=env, capture_output=True, text=True)
        returned = time.perf_counter()
        assert done.returncode == 0, done.stderr
        found = re.search(r"\((\d+) node netmap", done.stderr)
        assert found is not None, done.stderr
        changed = int(found.group(1))

        def pushed(snapshot: dict[str, int] = before, count: int = changed) -> bool:
            return sum(a.version > snapshot[a.name] for a in agents) >= count

        await wait_until(pushed)
        cpu = (server.cpu_seconds() - server_cpu, time.process_time() - fleet_cpu)
        held = [min(t for v, t in a.held_at.items() if v > before[a.name])
                for a in agents if a.version > before[a.name]]
        push_rows.append((changed, returned - t0, [max(0.0, t - returned) for t in held],
                          [t - t0 for t in held], cpu))
        print(f"push {round_no + 1}: apply took {returned - t0:.2f} s, {changed} netmaps "
              f"changed, {len(held)} agents verified; after apply returned: "
              f"{percentiles(push_rows[-1][2])}; after apply started: "
              f"{percentiles(push_rows[-1][3])}; CPU seconds: server {cpu[0]:.1f}, "
              f"simulated agents {cpu[1]:.1f}")

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as admin:
        join_lags: list[float] = []
        join_calls: list[float] = []
        for j in range(args.joins):
            tagged = j % 2 == 1
            body = {"tags": [f"tag:t{j % TAGS}"]} if tagged else \
                {"user": f"u{j % GROUPS}-0@example.com"}
            made = await asyncio.to_thread(admin.post, "/api/v1/authkeys", json=body)
            key = made.json()["key"]
            newcomer = Agent(PrivateKey.generate(), f"join{j}")
            t0 = time.perf_counter()
            await fleet.register(newcomer, key)
            registered = time.perf_counter()
            join_calls.append(registered - t0)
            names = await asyncio.to_thread(_peer_names, admin, newcomer.name)  # loop stays free
            peers = [a for a in agents if a.name in names]
            def joined(group: list[Agent] = peers, key: str = newcomer.key) -> bool:
                return all(key in a.peer_keys for a in group)

            await wait_until(joined)
            print(f"join {j + 1}: {len(peers)} peers, register {registered - t0:.2f} s, "
                  f"all peers hold the key: {joined()}; agent errors: {fleet.errors[-3:]}",
                  flush=True)
            for agent in peers:
                held = [t for t in agent.held_at.values() if t >= t0]
                join_lags.append(max(0.0, min(held) - registered) if held else 0.0)
            agents.append(newcomer)
            tasks.append(asyncio.create_task(fleet.run(newcomer, stop)))
        print(f"joins: {args.joins} joins, register call {percentiles(join_calls)}; "
              f"peers holding the new key after the answer: {len(join_lags)} samples, "
              f"{percentiles(join_lags)}")
    stop.set()
    server.stop()
    for task in tasks:
        task.cancel()
    await fleet.http.aclose()
    print()
    print("| measure | nodes | result |")
    print("|---|---:|---|")
    print(f"| server RSS, no agents / {args.nodes} idle long-polls | {args.nodes} | "
          f"{rss_idle:.0f} MiB / {rss_polls:.0f} MiB |")
    for changed, took, lags, from_start, cpu in push_rows:
        print(f"| policy push: `policyc apply` run (subprocess) | {changed} | {took:.2f} s |")
        print(f"| policy push: apply returned -> agent holds verified netmap | {changed} | "
              f"{percentiles(lags)} |")
        print(f"| policy push: apply started -> agent holds verified netmap | {changed} | "
              f"{percentiles(from_start)} |")
        print(f"| policy push: CPU seconds, server / all simulated agents | {changed} | "
              f"{cpu[0]:.1f} s / {cpu[1]:.1f} s |")
    print(f"| join: register call; answer -> every peer holds the key | {args.nodes} | "
          f"{percentiles(join_calls)}; {percentiles(join_lags)} |")


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--joins", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(args, Path(tmp)))


if __name__ == "__main__":
    main()
