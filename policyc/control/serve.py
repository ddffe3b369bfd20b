"""Creating a state directory, and serving it with uvicorn until a signal.

On SIGTERM/SIGINT uvicorn stops accepting connections; before that, the
long-polls are drained (answered "no change" at once), so shutdown does not
wait out a minute of idle polls, and the process exits 0.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from policyc.compiler.nodes import Inventory
from policyc.control.app import Settings, create_app
from policyc.control.errors import ControlError
from policyc.control.policies import (
    DEFAULT_POLICY,
    check_policy,
    diagnostics_json,
    policy_etag,
    refuse_too_large,
)
from policyc.control.statedir import (
    ADMIN_TOKEN,
    ADMIN_TOKEN_SETTING,
    DATABASE,
    ControlKeys,
    StateError,
    create_keys,
    load_keys,
    new_admin_token,
    prepare_new_state,
    replace_secret,
    token_digest,
)
from policyc.control.store import Store
from policyc.control.tailnet import Tailnet, admin_actor


def init_state(state: Path, policy_text: str | None = None) -> tuple[str, ControlKeys]:
    """A new control state in `state`: keys, admin token, database, first policy.

    The policy is checked first (a 413-style ControlError over the size limit
    `PUT /api/v1/policy` applies, 422-style with diagnostics when invalid), so a
    refused init creates nothing. Raises StateError for an existing state.
    """
    text = DEFAULT_POLICY if policy_text is None else policy_text
    refuse_too_large(text)
    policy, diags = check_policy(text, Inventory.of([]))
    if policy is None:
        raise ControlError(422, "invalid-policy", "the initial policy has errors",
                           diagnostics_json(diags))
    prepare_new_state(state)
    keys, token = create_keys(state)
    os.close(os.open(state / DATABASE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    store = Store(state / DATABASE)  # SQLite gives -wal and -shm the database's mode
    try:
        with store.transaction():
            store.set_setting(ADMIN_TOKEN_SETTING, token_digest(token))
            store.add_policy(text, policy_etag(text), int(time.time()), "init")
    finally:
        store.close()
    return token, keys


def rotate_token_offline(state: Path) -> str:
    """A new admin token written straight into a stopped server's state (a lost token)."""
    load_keys(state)  # refuses a directory that is not a control state
    token = new_admin_token()
    store = Store(state / DATABASE)
    try:
        with store.transaction():
            store.set_setting(ADMIN_TOKEN_SETTING, token_digest(token))
            store.add_audit(int(time.time()), "local", "admin.token-rotate", "admin token",
                            {"new": admin_actor(token_digest(token)), "offline": True})
    finally:
        store.close()
    replace_secret(state / ADMIN_TOKEN, token + "\n")
    return token


def open_tailnet(state: Path) -> Tailnet:
    keys = load_keys(state)
    return Tailnet(Store(state / DATABASE), keys)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, tailnet: Tailnet,
                 on_ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self._tailnet = tailnet
        self._on_ready = on_ready

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._tailnet.watchers.drain()
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal after shutdown (exit status -15);
        # the contract is a clean exit 0 once everything is drained.
        self._captured_signals.clear()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_ready(f"http://{host}:{port}" if ":" not in host else
                           f"http://[{host}]:{port}")


def serve(state: Path, host: str, port: int, settings: Settings | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve `state` on host:port until SIGTERM/SIGINT (port 0: any free port)."""
    tailnet = open_tailnet(state)
    try:  # bound here, so "address in use" is our error (exit 2), not uvicorn's exit 3
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                    else socket.AF_INET)
    except OSError as err:
        tailnet.store.close()
        raise StateError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    config = uvicorn.Config(create_app(tailnet, settings), host=host, port=port,
                            log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=10)

    def ready(url: str) -> None:
        print(f"policyc control: listening on {url}", file=sys.stderr, flush=True)

    try:
        _Server(config, tailnet, on_ready or ready).run(sockets=[sock])
    finally:
        sock.close()
        tailnet.store.close()
