"""A diagnostic's notes reach the editor: as relatedInformation when the client
takes it (linked to the place a note talks about), else as lines of the message."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsp_client import SERVER, open_document, position_of
from lsprotocol import types
from pytest_lsp import LanguageClient

DUPLICATE = """{
  "groups": {
    "group:dev": ["alice@example.com"],
    "group:dev": ["bob@example.com"],
  },
  "acls": [{"action": "accept", "src": ["group:dev"], "dst": ["*:22"]}],
}
"""
NOTE = "first defined at line 3, column 5; the first definition is kept"
RELATED = types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
    publish_diagnostics=types.PublishDiagnosticsClientCapabilities(related_information=True)))

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=SERVER, scope="module")
async def related(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(capabilities=RELATED))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER, scope="module")
async def plain(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


async def test_a_duplicate_keys_note_links_its_first_definition(related: LanguageClient,
                                                                ) -> None:
    uri, diagnostics = await open_document(related, "dup.hujson", DUPLICATE)
    [dup] = [d for d in diagnostics if d.code == "P002"]
    assert dup.message == 'duplicate key "group:dev" in object'
    assert dup.range.start == position_of(DUPLICATE, '"group:dev": ["bob')
    [info] = dup.related_information or []
    assert info.message == NOTE
    assert info.location.uri == uri
    first = position_of(DUPLICATE, '"group:dev": ["alice')
    assert info.location.range == types.Range(
        start=first, end=types.Position(line=first.line, character=first.character + 11))


async def test_notes_without_a_place_point_at_the_diagnostic(related: LanguageClient) -> None:
    text = '{\n  "groups": {"group:dev": ["alice@example.com],\n  },\n}\n'  # unclosed string
    _, diagnostics = await open_document(related, "syntax.hujson", text)
    [syntax] = diagnostics
    assert syntax.code == "P003" and syntax.related_information
    assert [info.message for info in syntax.related_information] == [
        "a string must close with '\"' on the same line; write line breaks as \\n"]
    assert syntax.related_information[0].location.range == syntax.range


async def test_a_client_without_related_information_gets_notes_in_the_message(
        plain: LanguageClient) -> None:
    _, diagnostics = await open_document(plain, "dup-plain.hujson", DUPLICATE)
    [dup] = [d for d in diagnostics if d.code == "P002"]
    assert dup.related_information is None
    assert dup.message == f'duplicate key "group:dev" in object\nnote: {NOTE}'
