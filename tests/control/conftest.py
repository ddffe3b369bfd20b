"""Fixtures: a fresh control state and a real server on loopback per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from control_harness import POLICY, ControlServer

from policyc.control import init_state


@pytest.fixture
def make_control(tmp_path: Path) -> Iterator[Callable[..., ControlServer]]:
    started: list[ControlServer] = []

    def make(policy: str | None = POLICY, **options: object) -> ControlServer:
        state = tmp_path / f"state{len(started)}"
        init_state(state, policy)
        server = ControlServer(state, **options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def control(make_control: Callable[..., ControlServer]) -> ControlServer:
    return make_control()


@pytest.fixture(scope="module")
def shared_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlServer]:
    """One server for a module's tests that change nothing (each asserts so)."""
    state = tmp_path_factory.mktemp("shared") / "state"
    init_state(state, POLICY)
    server = ControlServer(state).start()
    yield server
    server.kill()
