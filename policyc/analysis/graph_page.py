"""The HTML page of `policyc graph`: one file, inline CSS and JS, no network.

The access map travels as JSON in a `<script type="application/json">`
element; `<`, `>` and `&` are escaped inside it, so no name in a policy can
close the element. The script builds the table with `textContent` only:
policy names are never parsed as HTML.
"""

from __future__ import annotations

import html
import json
from typing import Any

STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #1d2330; }
h1 { font-size: 18px; margin: 0 0 4px; }
.meta { color: #5b6475; margin-bottom: 10px; }
.controls { display: flex; gap: 12px; align-items: center; margin-bottom: 10px; }
.controls input[type=text] { padding: 4px 6px; width: 16em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d5d9e2; padding: 3px 6px; vertical-align: top; }
thead th { position: sticky; top: 0; background: #f3f5f9; writing-mode: vertical-rl;
  transform: rotate(180deg); text-align: left; max-height: 14em; }
th.row { text-align: left; white-space: nowrap; background: #f8f9fb; }
td.cell { min-width: 4.5em; font-family: ui-monospace, monospace; font-size: 12px; }
td.full { background: #d9f2df; }
td.partial { background: #fdf1cf; }
td.empty { background: #fff; }
td.hit { outline: 2px solid #2f6fdf; }
.kind { color: #8a93a5; font-size: 11px; margin-left: 4px; }
#detail { margin-top: 12px; white-space: pre-wrap; font-family: ui-monospace, monospace; }
.legend span { padding: 1px 6px; margin-right: 6px; }
"""

SCRIPT = r"""
"use strict";
const data = JSON.parse(document.getElementById("access-data").textContent);
const byCell = new Map(data.cells.map(c => [c.row + ":" + c.col, c]));
const table = document.getElementById("matrix");
const detail = document.getElementById("detail");

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function build() {
  const head = el("thead"), top = el("tr");
  top.appendChild(el("th", "source \\ destination"));
  data.columns.forEach((col, c) => {
    const th = el("th", col.name);
    th.dataset.col = String(c);
    th.title = col.kind + (col.nodes ? ", " + col.nodes + " node(s)" : "");
    top.appendChild(th);
  });
  head.appendChild(top);
  table.appendChild(head);
  const body = el("tbody");
  data.rows.forEach((row, r) => {
    const tr = el("tr");
    tr.dataset.row = String(r);
    const th = el("th", row.name, "row");
    th.appendChild(el("span", row.kind + ", " + row.nodes + " node(s)", "kind"));
    tr.appendChild(th);
    data.columns.forEach((col, c) => {
      const cell = byCell.get(r + ":" + c);
      const td = el("td", "", "cell empty");
      td.dataset.row = String(r);
      td.dataset.col = String(c);
      td.dataset.src = row.name;
      td.dataset.dst = col.name;
      if (cell) {
        td.textContent = cell.full || cell.some;
        td.className = "cell " + (cell.full === cell.some ? "full" : "partial");
        td.dataset.full = JSON.stringify(cell.fullSet);
        td.dataset.some = JSON.stringify(cell.someSet);
        td.dataset.rules = cell.rules.map(rule => rule.location).join(" ");
        td.title = cell.rules.map(rule => rule.label + " at " + rule.location).join("\n");
        td.addEventListener("click", () => show(row, col, cell));
      }
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
  table.appendChild(body);
}

function show(row, col, cell) {
  const lines = [row.name + " -> " + col.name,
    "every device of the source: " + (cell.full || "nothing"),
    "some device of the source:  " + cell.some, "rules:"];
  cell.rules.forEach(rule => lines.push("  " + rule.label + " at " + rule.location));
  detail.textContent = lines.join("\n");
}

function portMatches(set, port) {
  return Object.entries(set).some(([proto, ranges]) =>
    ranges.some(([first, last]) => (proto === "6" || proto === "17" || proto === "132")
      ? first <= port && port <= last : false));
}

function applyFilters() {
  const text = document.getElementById("filter").value.trim().toLowerCase();
  const port = parseInt(document.getElementById("port").value, 10);
  const hideEmpty = document.getElementById("hide-empty").checked;
  const colVisible = data.columns.map((col, c) => {
    const named = !text || col.name.toLowerCase().includes(text);
    const used = !hideEmpty || data.cells.some(cell => cell.col === c);
    return named && used;
  });
  const rowVisible = data.rows.map((row, r) => {
    const named = !text || row.name.toLowerCase().includes(text)
      || data.columns.some((col, c) => colVisible[c] && col.name.toLowerCase().includes(text));
    const used = !hideEmpty || data.cells.some(cell => cell.row === r);
    return named && used;
  });
  table.querySelectorAll("[data-col]").forEach(node => {
    const c = Number(node.dataset.col);
    const r = node.dataset.row === undefined ? -1 : Number(node.dataset.row);
    node.style.display = colVisible[c] && (r < 0 || rowVisible[r]) ? "" : "none";
    if (node.dataset.some !== undefined) {
      const some = JSON.parse(node.dataset.some);
      node.classList.toggle("hit", !isNaN(port) && portMatches(some, port));
    }
  });
  table.querySelectorAll("tbody tr").forEach(tr => {
    tr.style.display = rowVisible[Number(tr.dataset.row)] ? "" : "none";
  });
}

build();
["filter", "port", "hide-empty"].forEach(id =>
  document.getElementById(id).addEventListener("input", applyFilters));
applyFilters();
document.body.dataset.ready = "1";
"""


def render_page(data: dict[str, Any]) -> str:
    """The whole page for `AccessMap.to_json()` data."""
    payload = (json.dumps(data, separators=(",", ":"))
               .replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))
    where = "synthetic inventory (one node per user and tag)" if data["synthetic"] \
        else "the given inventory"
    title = html.escape(f"policyc access map: {data['policy']}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<div class="meta">Who may open what, over {html.escape(where)}. Green: every device of the
source; yellow: only some. Click a cell for its rules.</div>
<div class="controls">
  <label>filter names <input type="text" id="filter" placeholder="group:dev, tag:prod"></label>
  <label>port <input type="text" id="port" size="6" placeholder="22"></label>
  <label><input type="checkbox" id="hide-empty" checked> hide rows and columns without
  access</label>
</div>
<table id="matrix"></table>
<div id="detail"></div>
<script type="application/json" id="access-data">{payload}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
