"""Helpers for the protocol tests: a real `policyc lsp` process and a pytest-lsp client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parents[2]
SERVER = ClientServerConfig(
    server_command=[sys.executable, "-m", "policyc.cli", "lsp"],
    server_env={**os.environ, "PYTHONPATH": str(ROOT)},
)


def uri_of(name: str) -> str:
    return f"file:///virtual/{name}"


async def wait_for_diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The next diagnostics published for `uri`."""
    client.diagnostics.pop(uri, None)
    while uri not in client.diagnostics:
        await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return client.diagnostics[uri]


async def open_document(client: LanguageClient, name: str, text: str,
                        ) -> tuple[str, list[types.Diagnostic]]:
    uri = uri_of(name)
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="jsonc", version=1,
                                             text=text)))
    while uri not in client.diagnostics:
        await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return uri, client.diagnostics[uri]


def position_of(text: str, needle: str, delta: int = 0) -> types.Position:
    """The LSP position of `needle`'s first character (+delta) in ASCII `text`."""
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))
