"""The optional inventory: from initializationOptions or a workspace setting; a broken
one is reported once and everything that needs none keeps working."""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsp_client import SERVER, open_document, position_of, wait_for_diagnostics
from lsprotocol import types
from pytest_lsp import LanguageClient

POLICY = """{
  "tagOwners": {"tag:web": ["alice@example.com"], "tag:spare": ["alice@example.com"]},
  "acls": [
    {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:443"]},
  ],
}
"""


def _key(name: str) -> str:
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()


INVENTORY = {"nodes": [
    {"name": "web-1", "tags": ["tag:web"], "ips": ["100.64.0.1"], "key": _key("web-1")},
    {"name": "web-2", "tags": ["tag:web"], "ips": ["100.64.0.2"], "key": _key("web-2")},
    {"name": "laptop", "user": "alice@example.com", "ips": ["100.64.0.3"],
     "key": _key("laptop")},
]}
_FOLDER = tempfile.TemporaryDirectory(prefix="policyc-lsp-test-")
GOOD = Path(_FOLDER.name) / "nodes.json"
BROKEN = Path(_FOLDER.name) / "broken.json"
GOOD.write_text(json.dumps(INVENTORY))
BROKEN.write_text('{"nodes": [{"name": }')


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"inventory": str(BROKEN)}))
    yield
    await lsp_client.shutdown_session()


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _hover(client: LanguageClient, uri: str, text: str, needle: str) -> str:
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(text, needle, 2)))
    assert result is not None and isinstance(result.contents, types.MarkupContent)
    return result.contents.value


async def test_a_broken_inventory_is_reported_once(client: LanguageClient) -> None:
    for name in ("one.hujson", "two.hujson"):
        _, diagnostics = await open_document(client, name, POLICY)
        assert list(diagnostics) == []  # and no inventory-aware warnings: none is loaded
    warnings = [m for m in client.messages if "inventory" in m.message]
    assert len(warnings) == 1
    assert str(BROKEN) in warnings[0].message and "P001" in warnings[0].message
    assert "no inventory" in await _hover(client, "file:///virtual/one.hujson", POLICY,
                                          '"tag:web:443"')


async def test_a_workspace_setting_loads_the_inventory(client: LanguageClient) -> None:
    uri, _ = await open_document(client, "inv.hujson", POLICY)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"policyc": {"inventory": str(GOOD)}}))
    diagnostics = await wait_for_diagnostics(client, uri)
    # With nodes, check's inventory-aware lint runs: tag:spare is carried by none.
    assert [d.code for d in diagnostics] == ["W205"]
    tag = await _hover(client, uri, POLICY, '"tag:web:443"')
    assert "carried by 2 node(s): `web-1`, `web-2`" in tag
    rule = await _hover(client, uri, POLICY, '"action"')
    assert "reaches 2 of 3 node(s), from 1 source node(s)" in rule
