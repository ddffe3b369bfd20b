"""The state directory: modes, atomic writes, the node key and control's pinned keys."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from meshnode_helpers import FakeControlKeys

from policyc.meshnode.keys import (
    load_or_create_node_key,
    load_pinned_control_keys,
    pin_control_keys,
)
from policyc.meshnode.state import StateDir, StateError, atomic_write


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_is_made_private_and_a_loose_one_is_tightened(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "a" / "state").ensure()
    assert mode(state.root) == 0o700
    os.chmod(state.root, 0o755)
    state.ensure()
    assert mode(state.root) == 0o700


def test_atomic_write_replaces_whole_files_with_mode_0600_and_leaves_no_temporaries(
        tmp_path: Path) -> None:
    target = tmp_path / "netmap.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["netmap.json"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "netmap.json"
    atomic_write(target, b"good")

    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["netmap.json"]


def test_node_key_is_made_once_private_and_matches_wg_pubkey(tmp_path: Path) -> None:
    state = StateDir(tmp_path).ensure()
    key, created = load_or_create_node_key(state)
    again, created_again = load_or_create_node_key(state)
    assert created and not created_again
    assert key == again
    assert mode(state.node_key) == 0o600
    private_text = state.node_key.read_text()
    wg = subprocess.run(["wg", "pubkey"], input=private_text, capture_output=True, text=True,
                        check=False)
    if wg.returncode == 0:  # the real tool agrees on the public key
        assert wg.stdout.strip() == key.public_key


def test_a_node_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    state = StateDir(tmp_path).ensure()
    load_or_create_node_key(state)
    os.chmod(state.node_key, 0o644)
    with pytest.raises(StateError, match="readable by others"):
        load_or_create_node_key(state)


def test_a_corrupt_node_key_is_refused(tmp_path: Path) -> None:
    state = StateDir(tmp_path).ensure()
    atomic_write(state.node_key, b"not-a-key\n")
    with pytest.raises(StateError):
        load_or_create_node_key(state)


def test_control_keys_are_pinned_and_another_expected_key_refuses_the_join(
        tmp_path: Path) -> None:
    state = StateDir(tmp_path).ensure()
    control, impostor = FakeControlKeys(), FakeControlKeys()
    assert load_pinned_control_keys(state) is None
    with pytest.raises(StateError, match="--control-key"):
        pin_control_keys(state, impostor.pins, control.pins.signing_key)
    assert load_pinned_control_keys(state) is None
    pin_control_keys(state, control.pins, control.pins.signing_key)
    assert load_pinned_control_keys(state) == control.pins
    assert mode(state.control_keys) == 0o600
