"""`policyc lsp`: the language server (pygls), wiring editor requests to the library.

Analysis (parse, build, validate, lint, tests) runs on one worker thread, so
the event loop keeps answering while a large policy is analysed. Changes are
coalesced: while one analysis runs, further edits only mark the document
dirty, and the next analysis takes the newest text; a result for a version
the editor has already replaced is dropped, never published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from policyc.compiler.inventory import load_inventory_file
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.fmt import format_source
from policyc.lsp import actions, completion, navigation
from policyc.lsp.document import Analysis, to_lsp_diagnostics
from policyc.lsp.incremental import Engine
from policyc.lsp.positions import lsp_position, offset_of
from policyc.lsp.symbols import SymbolIndex
from policyc.policy.model import Policy

log = logging.getLogger(__name__)

LARGE = 256 * 1024
# Seconds to wait after an edit before analysing. An edit inside one rule or
# definition is analysed at once (incremental.py: milliseconds even at 1 MB); on a
# large file, other edits (a full analysis) wait for the typing burst to end.
DEBOUNCE_LARGE = 0.25
# Seconds of quiet after which the document is analysed whole with its policy
# tests (the results shown until then are the last ones, moved with the text).
IDLE = 1.0
IDLE_LARGE = 3.0


class _Protocol(LanguageServerProtocol):
    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams,
                       ) -> Generator[Any, Any, types.InitializeResult]:
        # Positions are always UTF-16 (positions.py), the encoding every client supports.
        if params.capabilities.general is not None:
            params.capabilities.general.position_encodings = None
        return (yield from super().lsp_initialize(params))


@dataclass
class _Document:
    uri: str
    version: int | None = None  # the client's version of the text
    revision: int = 0  # ours: bumped by every change, save and inventory change
    tests_for: int | None = None  # the revision (a save) whose policy tests should run
    latest: Analysis | None = None
    names: SymbolIndex = field(default_factory=SymbolIndex)  # of the last text that parsed
    task: asyncio.Task[None] | None = None
    wants_complete: bool = False  # a request waits for the whole analysis
    whole_for: int | None = None  # the revision last analysed whole, with its tests
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set on every publish
    poked: asyncio.Event = field(default_factory=asyncio.Event)  # an edit or a request
    engine: Engine = field(default_factory=lambda: Engine(""))


class PolicyServer(LanguageServer):
    def __init__(self) -> None:
        try:
            version = package_version("policyc")
        except PackageNotFoundError:
            version = "0"
        super().__init__("policyc", version, protocol_cls=_Protocol)
        self.documents: dict[str, _Document] = {}
        self.inventory: Inventory | None = None
        self.inventory_setting: str | None = None
        self.reported: set[str] = set()  # inventory problems already shown
        self.related_information = False  # the client takes Diagnostic.relatedInformation
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policyc-analysis")

    # --- documents and analysis ---------------------------------------------------

    def text_of(self, uri: str) -> str:
        return self.workspace.get_text_document(uri).source

    def touch(self, uri: str, version: int | None, *, tests: bool = False) -> None:
        doc = self.documents.get(uri)
        if doc is None:
            doc = self.documents[uri] = _Document(uri, engine=Engine(_name_of(uri)))
        doc.revision += 1
        if version is not None:
            doc.version = version
        if tests:
            doc.tests_for = doc.revision
        self._wake(doc)

    def _wake(self, doc: _Document) -> None:
        doc.poked.set()
        if doc.task is None or doc.task.done():
            doc.task = asyncio.ensure_future(self._analyse(doc))

    async def _analyse(self, doc: _Document) -> None:
        """Analyse the newest text until it is published; then, once typing pauses,
        analyse it whole with its policy tests (and for navigation requests)."""
        loop = asyncio.get_running_loop()
        while self.documents.get(doc.uri) is doc:  # not closed (nor closed and reopened)
            doc.poked.clear()
            revision, text = doc.revision, self.text_of(doc.uri)
            tests = doc.tests_for == revision
            if doc.latest is not None and doc.latest.version == revision:
                # Published already: what is left is the whole analysis with the
                # tests, after a pause (or now, for a request that needs it).
                if doc.whole_for == revision:
                    return
                if not doc.wants_complete:
                    idle = IDLE_LARGE if len(text) > LARGE else IDLE
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(doc.poked.wait(), idle)
                    if doc.revision != revision or not (doc.wants_complete
                                                        or not doc.poked.is_set()):
                        continue
                tests = True
            elif len(text) > LARGE and not doc.engine.is_local(text):
                await asyncio.sleep(DEBOUNCE_LARGE)
                if doc.revision != revision:
                    continue  # typed on: wait for the newest text
            complete = tests or doc.latest is None
            analysis = await loop.run_in_executor(
                self.worker, _safe_analyze, doc.engine, text, revision, self.inventory,
                complete, tests)
            if self.documents.get(doc.uri) is not doc:
                return
            if analysis.internal_error is not None:
                self.window_log_message(types.LogMessageParams(
                    type=types.MessageType.Error,
                    message=f"policyc: internal error analysing {doc.uri}: "
                            f"{analysis.internal_error}"))
            if doc.revision != revision:
                continue  # stale: the editor moved on while this ran; go again
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
                uri=doc.uri, version=doc.version,
                diagnostics=to_lsp_diagnostics(analysis, doc.uri,
                                               related=self.related_information)))
            doc.latest = analysis
            if tests:
                doc.whole_for = revision
            if analysis.complete:
                doc.wants_complete = False
                await loop.run_in_executor(self.worker, _warm_index, analysis)
                if analysis.tree is not None:
                    doc.names = analysis.index
            doc.changed.set()
            doc.changed = asyncio.Event()

    async def current(self, uri: str) -> Analysis | None:
        """The whole analysis of the document's newest version (waits for it, never
        blocks): navigation needs its tree, which an incremental result lacks."""
        doc = self.documents.get(uri)
        while doc is not None and (doc.latest is None or doc.latest.version != doc.revision
                                   or not doc.latest.complete):
            doc.wants_complete = True
            changed = doc.changed
            self._wake(doc)
            await changed.wait()
            doc = self.documents.get(uri)
        return doc.latest if doc is not None else None

    # --- the inventory ------------------------------------------------------------

    def set_inventory(self, setting: Any) -> None:
        path = setting if isinstance(setting, str) and setting else None
        if path == self.inventory_setting:
            return
        self.inventory_setting = path
        self.inventory = self._load_inventory(path) if path is not None else None
        for uri in list(self.documents):
            self.touch(uri, None)

    def _load_inventory(self, setting: str) -> Inventory | None:
        path = Path(setting)
        root = self.workspace.root_path
        if not path.is_absolute() and root:
            path = Path(root) / path
        inventory, diags = load_inventory_file(path)
        if inventory is None or diags.has_errors:
            self._report_once(str(path), diags)
            return None
        return inventory

    def _report_once(self, path: str, diags: Diagnostics) -> None:
        if path in self.reported:
            return
        self.reported.add(path)
        first = diags.errors[0] if diags.errors else None
        detail = str(first) if first is not None else "it could not be read"
        self.window_show_message(types.ShowMessageParams(
            type=types.MessageType.Warning,
            message=f"policyc: inventory {path} not used ({detail}); "
                    "features that need no inventory still work"))


def _name_of(uri: str) -> str:
    return to_fs_path(uri) or uri


def _warm_index(analysis: Analysis) -> None:
    analysis.index  # noqa: B018  (computes and caches the cached_property)


def _safe_analyze(engine: Engine, text: str, version: int, inventory: Inventory | None,
                  complete: bool, tests: bool) -> Analysis:
    try:
        if complete:
            return engine.full(text, version, inventory, run_tests=tests)
        return engine.update(text, version, inventory)
    except Exception as err:  # an internal bug must not take the editor's server down
        log.exception("analysis of %s failed", engine.name)
        engine.state = None  # start again from the whole text next time
        source = SourceFile(engine.name, text)
        return Analysis(version, source, None, Policy(source), (), inventory, True,
                        f"{type(err).__name__}: {err}")


server = PolicyServer()


def _options_inventory(options: Any) -> Any:
    if isinstance(options, dict):
        nested = options.get("policyc")
        if isinstance(nested, dict):
            return nested.get("inventory")
        return options.get("inventory")
    return None


@server.feature(types.INITIALIZE)
def _initialize(ls: PolicyServer, params: types.InitializeParams) -> None:
    text_document = params.capabilities.text_document
    publish = text_document.publish_diagnostics if text_document is not None else None
    ls.related_information = bool(publish is not None and publish.related_information)
    ls.set_inventory(_options_inventory(params.initialization_options))


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def _configuration(ls: PolicyServer, params: types.DidChangeConfigurationParams) -> None:
    ls.set_inventory(_options_inventory(params.settings))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def _did_open(ls: PolicyServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.touch(params.text_document.uri, params.text_document.version)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def _did_change(ls: PolicyServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.touch(params.text_document.uri, params.text_document.version)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def _did_save(ls: PolicyServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.touch(params.text_document.uri, None, tests=True)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def _did_close(ls: PolicyServer, params: types.DidCloseTextDocumentParams) -> None:
    doc = ls.documents.pop(params.text_document.uri, None)
    if doc is not None:
        doc.changed.set()
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
        uri=params.text_document.uri, diagnostics=[]))


async def _at(ls: PolicyServer, uri: str, position: types.Position,
              ) -> tuple[Analysis, int] | None:
    analysis = await ls.current(uri)
    if analysis is None:
        return None
    return analysis, offset_of(analysis.source, position)


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def _hover(ls: PolicyServer, params: types.HoverParams) -> types.Hover | None:
    found = await _at(ls, params.text_document.uri, params.position)
    return navigation.hover(*found) if found else None


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
async def _definition(ls: PolicyServer, params: types.DefinitionParams,
                      ) -> types.Location | None:
    found = await _at(ls, params.text_document.uri, params.position)
    target = navigation.definition(*found) if found else None
    return types.Location(uri=params.text_document.uri, range=target) if target else None


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
async def _references(ls: PolicyServer, params: types.ReferenceParams,
                      ) -> list[types.Location]:
    found = await _at(ls, params.text_document.uri, params.position)
    ranges = (navigation.references(*found, params.context.include_declaration)
              if found else [])
    return [types.Location(uri=params.text_document.uri, range=r) for r in ranges]


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
async def _prepare_rename(ls: PolicyServer, params: types.PrepareRenameParams,
                          ) -> types.PrepareRenamePlaceholder | None:
    found = await _at(ls, params.text_document.uri, params.position)
    target = navigation.rename_target(*found) if found else None
    if found is None or target is None:
        return None
    analysis = found[0]
    return types.PrepareRenamePlaceholder(
        range=types.Range(start=lsp_position(analysis.source, target.start),
                          end=lsp_position(analysis.source, target.end)),
        placeholder=target.name)


@server.feature(types.TEXT_DOCUMENT_RENAME)
async def _rename(ls: PolicyServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    found = await _at(ls, params.text_document.uri, params.position)
    target = navigation.rename_target(*found) if found else None
    if found is None or target is None:
        return None
    problem = navigation.rename_problem(target, params.new_name)
    if problem is not None:
        raise ValueError(problem)  # pygls answers with an error the editor shows
    edits = navigation.rename_edits(found[0], target, params.new_name)
    return types.WorkspaceEdit(changes={params.text_document.uri: edits})


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=['"', ":"]))
async def _completion(ls: PolicyServer, params: types.CompletionParams,
                      ) -> types.CompletionList:
    uri = params.text_document.uri
    text = ls.text_of(uri)
    doc = ls.documents.get(uri)
    # Text being typed rarely parses: offer the names of the last text that did.
    index = doc.names if doc is not None else SymbolIndex()
    offset = offset_of(SourceFile(uri, text), params.position)
    return types.CompletionList(is_incomplete=False,
                                items=completion.completions(text, offset, index))


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
async def _code_action(ls: PolicyServer, params: types.CodeActionParams,
                       ) -> list[types.CodeAction]:
    analysis = await ls.current(params.text_document.uri)
    if analysis is None:
        return []
    start = offset_of(analysis.source, params.range.start)
    end = offset_of(analysis.source, params.range.end)
    return actions.quick_fixes(analysis, params.text_document.uri, start, end)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def _symbols(ls: PolicyServer, params: types.DocumentSymbolParams,
                   ) -> list[types.DocumentSymbol]:
    analysis = await ls.current(params.text_document.uri)
    return actions.outline(analysis) if analysis is not None else []


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
async def _formatting(ls: PolicyServer, params: types.DocumentFormattingParams,
                      ) -> list[types.TextEdit] | None:
    uri = params.text_document.uri
    source = SourceFile(_name_of(uri), ls.text_of(uri))
    formatted = await asyncio.get_running_loop().run_in_executor(
        ls.worker, format_source, source, Diagnostics())
    if formatted is None or formatted == source.text:
        return None if formatted is None else []
    whole = types.Range(start=types.Position(line=0, character=0),
                        end=lsp_position(source, len(source.text)))
    return [types.TextEdit(range=whole, new_text=formatted)]


def serve() -> None:
    """Speak LSP on standard input and output until the client says exit."""
    # The analysis thread is CPU-bound Python; a shorter GIL switch interval (5 ms by
    # default) lets the event loop answer requests between its slices sooner.
    sys.setswitchinterval(0.001)
    server.start_io()
