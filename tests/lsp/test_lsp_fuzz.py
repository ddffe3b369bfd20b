"""The server survives the fuzz corpus: mangled policies (tests/policy/test_mutations.py's
seeds and pieces) sent as edits, with every request answered after each one."""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsp_client import SERVER, open_document
from lsprotocol import types
from pytest_lsp import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policy"))
from test_mutations import PIECES, SEEDS

EDITS = 60


def corpus(count: int, seed: int = 12) -> list[str]:
    """Deterministic mutations: the same kinds test_mutations draws with hypothesis."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = rng.choice(SEEDS)
        for _ in range(rng.randint(1, 4)):
            at = rng.randint(0, len(text))
            kind = rng.choice(["delete", "insert", "replace", "drop-colons"])
            if kind == "delete":
                text = text[:at] + text[at + rng.randint(1, 8):]
            elif kind == "insert":
                text = text[:at] + rng.choice(PIECES) + text[at:]
            elif kind == "replace":
                text = text[:at] + rng.choice(PIECES) + text[at + 1:]
            else:
                text = text.replace(":", "", rng.randint(1, 3))
        out.append(text)
    return out


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_no_crash_on_the_fuzz_corpus(client: LanguageClient) -> None:
    uri, _ = await open_document(client, "fuzz.hujson", SEEDS[0])
    doc = types.TextDocumentIdentifier(uri=uri)
    origin = types.Position(line=0, character=0)
    for version, text in enumerate(corpus(EDITS), 2):
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
        lines = text.split("\n")
        middle = types.Position(line=len(lines) // 2, character=len(lines[len(lines) // 2]) // 2)
        for position in (origin, middle):
            await client.text_document_hover_async(
                types.HoverParams(text_document=doc, position=position))
            await client.text_document_completion_async(
                types.CompletionParams(text_document=doc, position=position))
            await client.text_document_definition_async(
                types.DefinitionParams(text_document=doc, position=position))
        await client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=doc))
        await client.text_document_formatting_async(types.DocumentFormattingParams(
            text_document=doc, options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
        await client.text_document_code_action_async(types.CodeActionParams(
            text_document=doc, range=types.Range(start=origin, end=middle),
            context=types.CodeActionContext(diagnostics=[])))
    # Still alive and still right: a fresh, known-bad document gets its diagnostic.
    _, diagnostics = await open_document(client, "after-fuzz.hujson", "[")
    assert [d.code for d in diagnostics] == ["P001"]
    assert client.error is None
    # An analysis that raised would have been reported as an Error log message.
    assert [m.message for m in client.log_messages
            if m.type == types.MessageType.Error] == []
