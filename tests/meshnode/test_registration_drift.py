"""A restart whose --endpoint or --advertise-routes differ from the node's registration
is noticed (the agent then registers again, so control takes them)."""

from __future__ import annotations

from pathlib import Path

from policyc.meshnode.agent import AgentConfig, registration_drift
from policyc.meshnode.state import StateDir

JOINED = {"name": "router", "addresses": ["100.64.0.1"], "endpoint": "198.18.0.2:41641",
          "advertised_routes": ["10.20.0.0/16"]}


def config(endpoints: tuple[str, ...], routes: tuple[str, ...]) -> AgentConfig:
    return AgentConfig(server="http://198.18.0.1:8080", state=StateDir(Path("/nonexistent")),
                       iface="wg0", endpoints=endpoints, advertise_routes=routes)


def test_the_same_flags_say_nothing() -> None:
    assert registration_drift(JOINED, config(("198.18.0.2:41641",), ("10.20.0.0/16",))) == []


def test_another_endpoint_or_other_routes_are_named_old_and_new() -> None:
    moved = registration_drift(JOINED, config(("198.18.0.9:41641",), ("10.20.0.0/16",)))
    assert len(moved) == 1 and "198.18.0.9:41641" in moved[0] and "198.18.0.2:41641" in moved[0]
    more = registration_drift(JOINED, config(("198.18.0.2:41641",),
                                             ("10.20.0.0/16", "10.30.0.0/16")))
    assert len(more) == 1 and "10.30.0.0/16" in more[0]
    both = registration_drift(JOINED, config((), ()))
    assert len(both) == 2 and "(none)" in both[0]


def test_not_joined_or_joined_before_this_was_recorded_says_nothing() -> None:
    assert registration_drift(None, config(("198.18.0.9:41641",), ())) == []
    old = {"name": "router", "addresses": ["100.64.0.1"]}
    assert registration_drift(old, config(("198.18.0.9:41641",), ("10.0.0.0/8",))) == []
