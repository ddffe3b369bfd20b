"""`policyc lsp` through a real LSP client over stdio (pytest-lsp).

Each test talks to a `policyc lsp` process; diagnostics are compared with
`policyc check --format json` on the same text, so the server and the
command line provably say the same thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_lsp
from click.testing import CliRunner
from lsp_client import SERVER, open_document, position_of, uri_of, wait_for_diagnostics
from lsprotocol import types
from pytest_lsp import LanguageClient

from policyc.cli import main

POLICY = """{
  "groups": {"group:dev": ["alice@example.com", "bob@example.com"]},
  "tagOwners": {"tag:web": ["group:dev"]},
  "hosts": {"db": "10.0.0.5"},
  "acls": [
    {"action": "accept", "src": ["group:dev"], "dst": ["tag:web:443", "db:5432"]},
  ],
}
"""
TYPO = POLICY.replace('"src": ["group:dev"]', '"src": ["group:deb"]')
NODES = [
    {"name": "web-1", "tags": ["tag:web"], "ips": ["100.64.0.1"], "key": "k1"},
    {"name": "web-2", "tags": ["tag:web"], "ips": ["100.64.0.2"], "key": "k2"},
    {"name": "laptop", "user": "alice@example.com", "ips": ["100.64.0.3"], "key": "k3"},
]


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


pytestmark = pytest.mark.asyncio(loop_scope="module")


def check_json(text: str, tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "policy.hujson"
    path.write_text(text)
    result = CliRunner().invoke(main, ["check", str(path), "--format", "json"])
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def as_check(diag: types.Diagnostic) -> tuple[object, ...]:
    r = diag.range
    return (diag.code, diag.message, r.start.line + 1, r.start.character + 1,
            r.end.line + 1, r.end.character + 1)


async def test_diagnostics_are_checks_own(client: LanguageClient, tmp_path: Path) -> None:
    text = TYPO.replace('"db:5432"', '"db:5432", "tag:nope:22"')
    _, diagnostics = await open_document(client, "same.hujson", text)
    expected = [(d["code"], d["message"], d["line"], d["column"], d["end_line"],
                 d["end_column"]) for d in check_json(text, tmp_path)]
    assert sorted(as_check(d) for d in diagnostics) == sorted(expected)
    assert {"E104", "E105"} <= {d.code for d in diagnostics}


async def test_a_change_updates_the_diagnostics(client: LanguageClient) -> None:
    uri, diagnostics = await open_document(client, "change.hujson", TYPO)
    assert [d.code for d in diagnostics] == ["E104"]
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=POLICY)]))
    assert list(await wait_for_diagnostics(client, uri)) == []


async def test_not_hujson_at_all(client: LanguageClient) -> None:
    uri, diagnostics = await open_document(client, "prose.hujson", "Dear server, hello.\n")
    assert [(d.code, d.range.start.line) for d in diagnostics] == [("P001", 0)]
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=0, character=2)))
    assert hover is None


async def test_hover(client: LanguageClient) -> None:
    text = POLICY.replace('"dst": [', '"dst": ["autogroup:self:*", ')
    uri, _ = await open_document(client, "hover.hujson", text)

    async def hover_at(needle: str, delta: int = 1) -> str:
        result = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position_of(text, needle, delta)))
        assert result is not None, needle
        assert isinstance(result.contents, types.MarkupContent)
        return result.contents.value

    group = await hover_at('"group:dev"]', 3)
    assert "2 user(s)" in group and "alice@example.com" in group
    tag = await hover_at('"tag:web:443"', 3)
    assert "owned by `group:dev`" in tag and "no inventory" in tag
    assert "`10.0.0.5/32`" in await hover_at('"db:5432"')
    assert "own untagged devices" in await hover_at('"autogroup:self')
    assert "ACL rule 1" in await hover_at('"action"')


async def test_definition_references_and_rename(client: LanguageClient) -> None:
    text = POLICY.replace('"src": ["group:dev"]', '"src": ["group:dev", "tag:web"]')
    uri, _ = await open_document(client, "nav.hujson", text)
    doc = types.TextDocumentIdentifier(uri=uri)
    use = position_of(text, '"tag:web:443"', 2)

    found = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc, position=use))
    assert isinstance(found, types.Location)
    assert found.range.start == position_of(text, '"tag:web": [', 1)

    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc, position=use,
        context=types.ReferenceContext(include_declaration=True)))
    assert refs is not None and len(refs) == 3  # tagOwners key, src, dst

    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc, position=use, new_name="tag:frontend"))
    assert edit is not None and edit.changes is not None
    edits = edit.changes[uri]
    assert len(edits) == 3 and {e.new_text for e in edits} == {"tag:frontend"}
    renamed = _apply(text, edits)
    assert renamed.count("tag:frontend") == 3 and "tag:web" not in renamed
    assert '"tag:frontend:443"' in renamed

    with pytest.raises(Exception, match="must start with 'tag:'"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc, position=use, new_name="frontend"))


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character),
                       reverse=True):
        start, end = edit.range.start, edit.range.end
        assert start.line == end.line
        line = lines[start.line]
        lines[start.line] = line[:start.character] + edit.new_text + line[end.character:]
    return "\n".join(lines)


async def test_completion(client: LanguageClient) -> None:
    text = POLICY.replace('{"action": "accept",', '{"action": "accept", "",')
    uri, _ = await open_document(client, "complete.hujson", POLICY)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    await wait_for_diagnostics(client, uri)
    doc = types.TextDocumentIdentifier(uri=uri)

    async def labels(position: types.Position) -> set[str]:
        result = await client.text_document_completion_async(
            types.CompletionParams(text_document=doc, position=position))
        assert isinstance(result, types.CompletionList)
        return {item.label for item in result.items}

    fields = await labels(position_of(text, '"",', 1))
    assert {"src", "dst", "proto", "srcPosture"} <= fields and "ip" not in fields
    names = await labels(position_of(text, '"db:5432"', 1))
    assert {"group:dev", "tag:web", "db", "autogroup:member"} <= names
    top = await labels(types.Position(line=1, character=3))
    assert {"acls", "grants", "tagOwners", "hosts"} <= top


async def test_quick_fixes(client: LanguageClient) -> None:
    text = TYPO.replace('"db:5432"', '"db:5432", "tag:api:22"')
    uri, diagnostics = await open_document(client, "fix.hujson", text)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0),
                          end=types.Position(line=20, character=0)),
        context=types.CodeActionContext(diagnostics=diagnostics)))
    assert actions is not None
    by_title = {a.title: a for a in actions if isinstance(a, types.CodeAction)}
    fix = by_title['Change to "group:dev"']
    assert fix.edit is not None and fix.edit.changes is not None
    assert _apply(text, fix.edit.changes[uri]) == text.replace("group:deb", "group:dev")
    add = by_title["Add tag:api to tagOwners"]
    assert add.edit is not None and add.edit.changes is not None
    fixed = _apply_insert(text, add.edit.changes[uri][0])
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)]))
    assert [d.code for d in await wait_for_diagnostics(client, uri)] == ["E104"]


def _apply_insert(text: str, edit: types.TextEdit) -> str:
    lines = text.split("\n")
    at = edit.range.start
    lines[at.line] = lines[at.line][:at.character] + edit.new_text + lines[at.line][at.character:]
    return "\n".join(lines)


async def test_document_symbols_and_formatting(client: LanguageClient) -> None:
    uri, _ = await open_document(client, "outline.hujson", POLICY)
    doc = types.TextDocumentIdentifier(uri=uri)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=doc))
    assert symbols is not None
    outline = {s.name: [c.name for c in s.children or []] for s in symbols
               if isinstance(s, types.DocumentSymbol)}
    assert outline["groups"] == ["group:dev"]
    assert outline["acls"] == ["#1 group:dev -> tag:web:443, db:5432"]

    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc, options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text.startswith('{\n  "groups": {\n    "group:dev": [')


async def test_saving_runs_the_policy_tests(client: LanguageClient) -> None:
    text = POLICY.replace('  ],\n}', '  ],\n  "tests": [{"src": "alice@example.com", '
                          '"deny": ["tag:web:443"]}],\n}')
    uri, diagnostics = await open_document(client, "tests.hujson", text)
    assert list(diagnostics) == []
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    saved = await wait_for_diagnostics(client, uri)
    assert [d.code for d in saved] == ["T302"]
    assert saved[0].range.start == position_of(text, '"tag:web:443"]}')


async def test_a_malformed_message_does_not_stop_the_server(client: LanguageClient) -> None:
    server = client._server  # the real process pytest-lsp started
    assert server is not None and server.stdin is not None
    body = b'{"jsonrpc": "2.0", "method": nonsense'
    server.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await server.stdin.drain()
    _, diagnostics = await open_document(client, "after-garbage.hujson", TYPO)
    assert [d.code for d in diagnostics] == ["E104"]


async def test_utf16_columns(client: LanguageClient) -> None:
    text = '{\n  "hosts": {"😀": "10.0.0.1"}, "acls": [{"action": "accept", "src": ["x"]}],\n}'
    _, diagnostics = await open_document(client, "emoji.hujson", text)
    missing = [d for d in diagnostics if d.code == "E103"]
    unused = [d for d in diagnostics if d.code == "W204"]
    assert missing and unused
    # "😀" is one code point but two UTF-16 units: everything after it shifts by one.
    line = text.split("\n")[1]
    assert missing[0].range.start.character == line.index('{"action"') + 1


async def test_uri_of_other_documents_is_untouched(client: LanguageClient) -> None:
    assert uri_of("x.hujson") not in client.diagnostics


async def test_rapid_edits_end_with_the_newest_texts_diagnostics(client: LanguageClient) -> None:
    """Edits sent faster than analysis runs are coalesced; what is published last is
    always about the newest text (a stale result is never published after it)."""
    uri, _ = await open_document(client, "rapid.hujson", POLICY)
    for version in range(2, 17):
        text = TYPO if version % 2 else POLICY.replace("db:5432", f"db:{version}")
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    # A request waits for the analysis of the newest text, and its diagnostics are
    # published before the answer, so they are in hand when the answer arrives.
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(POLICY, '"db:', 2)))
    assert hover is not None
    assert list(client.diagnostics[uri]) == []  # version 16 is the fixed text


async def test_policy_test_results_survive_edits_and_rerun_when_typing_pauses(
        client: LanguageClient) -> None:
    text = POLICY.replace('  ],\n}', '  ],\n  "tests": [{"src": "alice@example.com", '
                          '"deny": ["tag:web:443"]}],\n}')
    uri, _ = await open_document(client, "tests-kept.hujson", text)
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    while [d.code for d in await wait_for_diagnostics(client, uri)] != ["T302"]:
        pass

    def change(new_text: str, version: int) -> None:
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=new_text)]))

    # An edit that moves the test down a line and leaves it failing: the next
    # diagnostics (before the tests run again) still hold T302, at its new place.
    edited = text.replace('"10.0.0.5"', '"10.0.0.6"')
    edited = edited.replace('"group:dev"]},', '"group:dev"],\n},', 1)
    change(edited, 2)
    after_edit = await wait_for_diagnostics(client, uri)
    assert [d.code for d in after_edit] == ["T302"]
    assert after_edit[0].range.start == position_of(edited, '"tag:web:443"]}')
    # An edit that makes the test pass: once typing pauses the tests run again and
    # the failure goes; until then the last result stays (it does not flicker).
    fixed = edited.replace('"deny": ["tag:web:443"]', '"accept": ["tag:web:443"]')
    change(fixed, 3)
    first = await wait_for_diagnostics(client, uri)
    assert [d.code for d in first] in (["T302"], [])
    while client.diagnostics[uri]:
        await wait_for_diagnostics(client, uri)
    assert list(client.diagnostics[uri]) == []


async def test_navigation_after_an_incremental_edit_sees_the_new_text(
        client: LanguageClient) -> None:
    # The edit is inside one definition, so its diagnostics come from the
    # incremental analysis; a definition request then needs (and waits for) the
    # whole one, whose positions are those of the new text.
    uri, _ = await open_document(client, "nav-after-edit.hujson", POLICY)
    edited = POLICY.replace('"bob@example.com"]', '"bob@example.com", "carol@example.com"]')
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=edited)]))
    assert list(await wait_for_diagnostics(client, uri)) == []
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(edited, '"db:5432"', 2)))
    assert isinstance(found, types.Location)
    assert found.range.start == position_of(edited, '"db": ', 1)
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(edited, '"group:dev"]', 3)))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "3 user(s)" in hover.contents.value
