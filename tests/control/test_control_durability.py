"""kill -9 at random points during a stream of writes: nothing acknowledged is lost.

Each round starts the real server, runs policy pushes and node registrations
from two threads, SIGKILLs the server at a random moment, checks the SQLite
file with PRAGMA integrity_check, restarts, and finds every write that got a
200 before the kill.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from control_harness import POLICY, ControlServer, NodeRefused

from policyc.control import init_state

ROUNDS = 30


@dataclass
class Acked:
    policies: dict[int, str] = field(default_factory=dict)  # version -> text
    nodes: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # key -> name, ips
    lock: threading.Lock = field(default_factory=threading.Lock)


def push_policies(control: ControlServer, acked: Acked, stop: threading.Event,
                  round_no: int) -> None:
    n = 0
    with control.admin() as admin:
        while not stop.is_set():
            n += 1
            text = POLICY + f"// round {round_no} push {n}\n"
            try:
                answer = admin.put("/api/v1/policy", json={"policy": text},
                                   headers={"If-Match": "*"})
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                with acked.lock:
                    acked.policies[answer.json()["version"]] = text


def register_nodes(control: ControlServer, acked: Acked, stop: threading.Event) -> None:
    with control.admin() as admin:
        while not stop.is_set():
            try:
                made = admin.post("/api/v1/authkeys", json={"user": "alice@example.com"})
                if made.status_code != 200:
                    continue
                node = control.node("n")
                answer = node.register(made.json()["key"])
            except (httpx.HTTPError, NodeRefused):
                return
            with acked.lock:
                acked.nodes[node.key] = (answer.name, answer.addresses)


def check_everything_acked_is_there(control: ControlServer, acked: Acked) -> None:
    with control.admin() as admin:
        stored = {v["version"] for v in admin.get("/api/v1/policy/history").json()["versions"]}
        assert set(acked.policies) <= stored
        for version, text in acked.policies.items():
            assert admin.get(f"/api/v1/policy/versions/{version}").json()["policy"] == text
        listed = {n["key"]: (n["name"], tuple(n["ips"]))
                  for n in admin.get("/api/v1/nodes").json()["nodes"]}
    for key, registration in acked.nodes.items():
        assert listed.get(key) == registration


def integrity(database: Path) -> str:
    db = sqlite3.connect(database)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def acked_counts(acked: Acked) -> tuple[int, int]:
    with acked.lock:
        return len(acked.policies), len(acked.nodes)


def wait_for_progress(acked: Acked, before: tuple[int, int], limit: float = 60) -> None:
    """Until both writers had one write acknowledged since `before` (or `limit` s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        now = acked_counts(acked)
        if now[0] > before[0] and now[1] > before[1]:
            return
        time.sleep(0.02)


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(1234)
    state = tmp_path / "state"
    init_state(state, POLICY)
    control = ControlServer(state)
    acked = Acked()
    try:
        for round_no in range(ROUNDS):
            control.start()
            check_everything_acked_is_there(control, acked)
            stop = threading.Event()
            writers = [threading.Thread(target=push_policies,
                                        args=(control, acked, stop, round_no)),
                       threading.Thread(target=register_nodes, args=(control, acked, stop))]
            for writer in writers:
                writer.start()
            before = acked_counts(acked)
            stop.wait(rng.uniform(0.2, 1.5))
            wait_for_progress(acked, before)  # a slow (loaded) machine still writes each round
            control.kill()  # SIGKILL, mid-stream
            stop.set()
            for writer in writers:
                writer.join(60)
            assert integrity(state / "control.db") == "ok"
        control.start()
        check_everything_acked_is_there(control, acked)
        assert len(acked.policies) >= ROUNDS and len(acked.nodes) >= ROUNDS
    finally:
        control.kill()
