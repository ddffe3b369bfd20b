"""`policyc graph`: the access map's cells say what `explain` says, in a real browser.

The page is rendered by headless Debian `chromium` (scripts/install-system-deps.sh
installs it); its DOM after the script ran is compared cell by cell with
`explain`, and its console must stay silent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from strategies import load

from policyc.analysis.explain import ExplainError, explain
from policyc.analysis.graph import access_map
from policyc.analysis.graph_page import render_page
from policyc.compiler.inventory import load_inventory_file
from policyc.compiler.nodes import Inventory
from policyc.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
PORTS = (22, 80, 443, 631, 3000, 5432, 8080, 9100)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0")

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                                    reason="Debian chromium is not installed")


def _inventory() -> Inventory:
    inventory, diags = load_inventory_file(SAMPLES / "nodes.json")
    assert inventory is not None and not diags.has_errors
    return inventory


def chromium(page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """Load `page` in a fresh headless browser: the DOM after scripts ran, console lines."""
    done = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


class _Cells(HTMLParser):
    """The `td` elements the page's script made, with their data attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self.cells.append({k: v or "" for k, v in attrs})


def _ports(data: str, proto: int) -> set[int]:
    ranges = json.loads(data).get(str(proto), []) if data else []
    return {p for p in PORTS if any(first <= p <= last for first, last in ranges)}


def _sample_map() -> tuple[Policy, Inventory, dict[str, Any]]:
    policy = load((SAMPLES / "policy.hujson").read_text(), "samples/policy.hujson")
    inventory = _inventory()
    return policy, inventory, access_map(policy, inventory).to_json()


@needs_chromium
def test_page_renders_silently_and_cells_agree_with_explain(tmp_path: Path) -> None:
    policy, inventory, data = _sample_map()
    page = tmp_path / "access.html"
    page.write_text(render_page(data))
    dom, console = chromium(page, tmp_path / "profile", "--dump-dom")
    assert console == []
    assert 'data-ready="1"' in dom
    parser = _Cells()
    parser.feed(dom)
    assert len(parser.cells) == len(data["rows"]) * len(data["columns"]) > 100
    checked = 0
    for cell in parser.cells:
        dst = cell["data-dst"]
        sources = [e["name"] for e in data["rows"][int(cell["data-row"])]]
        assert cell["data-src"] == sources[0]
        full = _ports(cell.get("data-full", ""), 6)
        for src in sources:  # every source of a shared row has the row's cells
            try:
                any_port = explain(policy, inventory, src, dst, None, None)
            except ExplainError:
                break  # autogroup:internet names no address explain can take
            assert any_port.allowed == bool(json.loads(cell.get("data-full") or "{}")), \
                (src, dst)
            for port in PORTS:
                verdict = explain(policy, inventory, src, dst, port, "tcp").allowed
                assert verdict == (port in full), (src, dst, port)
                checked += 1
    assert checked > 1000
    by_pair = {(c["data-src"], c["data-dst"]): c for c in parser.cells}
    assert _ports(by_pair["group:dev", "tag:prod"]["data-full"], 6) == {22, 443, 8080}
    assert by_pair["group:marketing", "prod-db-host"].get("data-full") is None


class _Detail(HTMLParser):
    """The text of the page's detail panel, and the rule locations it lists."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []
        self.locations: list[str] = []
        self.open_cells: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if found.get("id") == "detail" or self.depth:
            self.depth += 1
            if "data-location" in found:
                self.locations.append(found["data-location"])
        if tag == "td" and "open" in found.get("class", "").split():
            self.open_cells.append((found["data-src"], found["data-dst"]))

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def _opened(tmp_path: Path, page: Path, fragment: str) -> _Detail:
    """The page loaded with `#fragment` in its address (what a click on a cell sets)."""
    done = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri() + "#" + quote(fragment)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if ":CONSOLE" in line] == []
    detail = _Detail()
    detail.feed(done.stdout)
    return detail


@needs_chromium
def test_opening_a_cell_shows_its_rules(tmp_path: Path) -> None:
    policy, inventory, data = _sample_map()
    page = tmp_path / "access.html"
    page.write_text(render_page(data))
    opened = _opened(tmp_path, page, "group:dev -> tag:prod")
    text = "".join(opened.text)
    assert opened.open_cells == [("group:dev", "tag:prod")]
    assert "every device of the source: 22,443,8080" in text
    assert opened.locations == ["samples/policy.hujson:48"]
    assert '"dst": ["tag:prod:22,443,8080", "tag:staging:*"]' in text
    assert "the same for: alice@acme.example, bob@acme.example" in text
    # A source that shares a row opens that row's cell. Its rules come from two of the
    # row's sources (group:dev's acls[6], autogroup:member's acls[5]), in policy order.
    opened = _opened(tmp_path, page, "alice@acme.example -> printer")
    assert opened.open_cells == [("group:dev", "printer")]
    rules = explain(policy, inventory, "alice@acme.example", "printer", None, None).rules()
    assert opened.locations == [r.location() for r in rules] == [
        "samples/policy.hujson:60", "samples/policy.hujson:61"]
    opened = _opened(tmp_path, page, "group:marketing -> prod-db-host")
    assert "nothing allowed" in "".join(opened.text) and opened.locations == []


@needs_chromium
def test_the_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(render_page({"policy": "p", "synthetic": True, "rows": [], "columns": [],
                                 "cells": None}))
    _, console = chromium(page, tmp_path / "profile", "--dump-dom")
    assert any("TypeError" in line for line in console)


@needs_chromium
def test_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "access.html"
    page.write_text(render_page(access_map(load((SAMPLES / "policy.hujson").read_text()),
                                           _inventory()).to_json()))
    shot = tmp_path / "shot.png"
    chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,900",
             "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_policy_names_cannot_break_out_of_the_page() -> None:
    text = (SAMPLES / "policy.hujson").read_text().replace(
        '"group:sre":       ["carol@acme.example"],',
        '"group:sre":       ["carol@acme.example"], "group:</script><b>x": ["carol@acme.example"],')
    page = render_page(access_map(load(text), None).to_json())
    assert "</script><b>" not in page and "group:\\u003c/script\\u003e\\u003cb\\u003ex" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page


def test_without_an_inventory_rows_are_the_synthetic_nodes() -> None:
    result = access_map(load((SAMPLES / "policy.hujson").read_text()), None)
    rows = {e.name: e for row in result.rows for e in row}
    assert result.synthetic and rows["group:dev"].nodes == 2 and rows["tag:prod"].nodes == 1
    cols = [c.name for c in result.columns]
    assert cols.index("tag:web") < cols.index("printer") < cols.index("autogroup:internet")
