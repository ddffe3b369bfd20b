"""The change pipeline in-process: a refused change leaves state and index untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from control_harness import POLICY
from nacl.public import PrivateKey

from policyc.control import init_state, open_tailnet
from policyc.control.errors import ControlError
from policyc.control.operations import create_auth_key, register
from policyc.protocol.messages import RegisterRequest
from policyc.protocol.sealed import public_key_text


def test_a_refused_registration_keeps_the_index_and_changes_nothing(tmp_path: Path) -> None:
    init_state(tmp_path / "state", POLICY)
    tailnet = open_tailnet(tmp_path / "state")
    try:
        key, _ = create_auth_key(tailnet, "alice@example.com", [], False, None)
        register(tailnet, public_key_text(PrivateKey.generate()),
                 RegisterRequest(key, "alice"), None)
        index, view = tailnet._netmaps, tailnet.view
        with pytest.raises(ControlError) as err:
            register(tailnet, public_key_text(PrivateKey.generate()),
                     RegisterRequest("pk-unknown", "mallory"), None)
        assert err.value.code == "auth-key-unknown"
        assert tailnet._netmaps is index and tailnet.view is view
        assert [n.name for n in tailnet.store.nodes()] == ["alice"]
        assert tailnet.store.integrity_check() == "ok"
    finally:
        tailnet.store.close()
