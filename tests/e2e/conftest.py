"""Fixtures for the namespace mesh tests: the samples, compiled and enforced."""

from __future__ import annotations

from collections.abc import Iterator

import harness
import pytest
from sample_tailnets import (
    MESH_NODES,
    OFFICE_HOSTS,
    OFFICE_LAN,
    OFFICE_NODES,
    OFFICE_ROUTER,
    Office,
    Tailnet,
    compile_netmaps,
    load_inventory,
    load_policy,
)


@pytest.fixture(scope="session", autouse=True)
def _sweep_leftovers() -> None:
    if harness.requirements_missing() is None:
        harness.sweep_leftovers()


@pytest.fixture(scope="module")
def tailnet() -> Iterator[Tailnet]:
    reason = harness.requirements_missing()
    if reason is not None:
        pytest.skip(reason)
    policy = load_policy()
    with harness.Mesh.build(load_inventory(), MESH_NODES) as mesh:
        net = Tailnet(mesh, policy, compile_netmaps(policy, mesh.inventory))
        mesh.enforce(net.netmaps)
        yield net


@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    reason = harness.requirements_missing()
    if reason is not None:
        pytest.skip(reason)
    policy = load_policy()
    with harness.Mesh.build(load_inventory(), OFFICE_NODES) as mesh:
        lan = mesh.add_lan(OFFICE_ROUTER, OFFICE_LAN, OFFICE_HOSTS)
        net = Office(mesh, policy, compile_netmaps(policy, mesh.inventory), lan)
        mesh.enforce(net.netmaps)
        yield net
