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
th.row .also { font-weight: normal; color: #5b6475; font-size: 11px; white-space: normal; }
td.cell { min-width: 4.5em; font-family: ui-monospace, monospace; font-size: 12px; }
td.full { background: #d9f2df; cursor: pointer; }
td.partial { background: #fdf1cf; cursor: pointer; }
td.empty { background: #fff; }
td.hit { outline: 2px solid #2f6fdf; }
td.open { outline: 2px solid #1d2330; }
.kind { color: #8a93a5; font-size: 11px; margin-left: 4px; }
#detail { position: sticky; bottom: 0; max-height: 40vh; overflow: auto; margin-top: 12px;
  padding: 8px; background: #fff; border-top: 2px solid #1d2330; white-space: pre-wrap;
  font-family: ui-monospace, monospace; }
#detail:empty { display: none; }
#detail .rule { color: #5b6475; }
.legend span { padding: 1px 6px; margin-right: 6px; }
"""

# The data (see AccessMap.to_json): rows are lists of sources with equal cells,
# cells are [row, col, full, some] with `full`/`some` indexes into `services`.
# A cell's rules are worked out only when it is opened (click, or the URL's
# `#SOURCE -> DESTINATION`) or hovered: the union over its row's sources
# (`rowSources`, as gaps: the first, then each one's distance from the one
# before) of `ruleLists[sourceRules[source][col]]`, positions in `rules`.
SCRIPT = r"""
"use strict";
const data = JSON.parse(document.getElementById("access-data").textContent);
const byCell = new Map(data.cells.map(cell => [cell[0] + ":" + cell[1], cell]));
const usedRows = new Set(data.cells.map(cell => cell[0]));
const usedCols = new Set(data.cells.map(cell => cell[1]));
const rowOf = new Map();
data.rows.forEach((names, r) => names.forEach(e => rowOf.set(e.name, r)));
const colOf = new Map(data.columns.map((col, c) => [col.name, c]));
const rangesJson = data.services.map(s => JSON.stringify(s.ranges));
const table = document.getElementById("matrix");
const detail = document.getElementById("detail");
const cellNodes = [];
const MAX_SAME = 6;  // names shown under a row's first; all are in its title and filter

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function nodesText(e) {
  return e.kind + ", " + e.nodes + " node(s)";
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
  data.rows.forEach((names, r) => {
    const tr = el("tr");
    tr.dataset.row = String(r);
    const th = el("th", names[0].name, "row");
    th.appendChild(el("span", nodesText(names[0]), "kind"));
    if (names.length > 1) {
      th.appendChild(el("br"));
      const others = names.slice(1).map(e => e.name);
      const shown = others.length > MAX_SAME ? others.slice(0, MAX_SAME - 1).concat(
        "and " + (others.length - MAX_SAME + 1) + " more") : others;
      th.appendChild(el("span", "same: " + shown.join(", "), "also"));
      th.title = names.map(e => e.name + " (" + nodesText(e) + ")").join("\n");
    }
    tr.appendChild(th);
    data.columns.forEach((col, c) => {
      const cell = byCell.get(r + ":" + c);
      const td = el("td", "", "cell empty");
      td.dataset.row = String(r);
      td.dataset.col = String(c);
      td.dataset.src = names[0].name;
      td.dataset.dst = col.name;
      if (cell) {
        const full = data.services[cell[2]], some = data.services[cell[3]];
        td.textContent = full.text || some.text;
        td.className = "cell " + (cell[2] === cell[3] ? "full" : "partial");
        td.dataset.full = rangesJson[cell[2]];
        td.dataset.some = rangesJson[cell[3]];
      }
      cellNodes.push([td, cell]);
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
  table.appendChild(body);
}

function cellRules(cell) {
  const found = new Set();
  let source = 0;
  data.rowSources[cell[0]].forEach(gap => {
    source += gap;
    const list = data.sourceRules[source][String(cell[1])];
    if (list !== undefined) data.ruleLists[list].forEach(k => found.add(k));
  });
  return Array.from(found).sort((a, b) => a - b).map(k => data.rules[k]);
}

function show(r, c) {
  const names = data.rows[r], col = data.columns[c], cell = byCell.get(r + ":" + c);
  table.querySelectorAll("td.open").forEach(td => td.classList.remove("open"));
  const td = table.querySelector('td[data-row="' + r + '"][data-col="' + c + '"]');
  if (td) td.classList.add("open");
  detail.textContent = "";
  const lines = [names[0].name + " -> " + col.name];
  const rules = cell ? cellRules(cell) : [];
  if (!cell) {
    lines.push("nothing allowed");
  } else {
    lines.push("every device of the source: " + (data.services[cell[2]].text || "nothing"),
      "some device of the source:  " + data.services[cell[3]].text,
      "rules (" + rules.length + "):");
  }
  detail.appendChild(el("div", lines.join("\n")));
  if (cell) {
    const list = el("div");
    list.id = "detail-rules";
    rules.forEach(rule => {
      const item = el("div", "  " + rule.label + " at " + rule.location);
      item.dataset.location = rule.location;
      item.appendChild(el("div", "    " + rule.text, "rule"));
      list.appendChild(item);
    });
    detail.appendChild(list);
  }
  if (names.length > 1) {
    const same = el("div", "the same for: " + names.slice(1).map(e => e.name).join(", "));
    same.id = "detail-same";
    detail.appendChild(same);
  }
}

function openFromHash() {
  const wanted = decodeURIComponent(location.hash.slice(1)).split(" -> ");
  if (wanted.length === 2 && rowOf.has(wanted[0]) && colOf.has(wanted[1])) {
    show(rowOf.get(wanted[0]), colOf.get(wanted[1]));
  }
}

function onCell(event, act) {
  const td = event.target.closest("td.cell");
  if (!td || !byCell.has(td.dataset.row + ":" + td.dataset.col)) return;
  act(td, byCell.get(td.dataset.row + ":" + td.dataset.col));
}

function portMatches(ranges, port) {
  return Object.entries(ranges).some(([proto, spans]) =>
    (proto === "6" || proto === "17" || proto === "132")
      && spans.some(([first, last]) => first <= port && port <= last));
}

function applyFilters() {
  const text = document.getElementById("filter").value.trim().toLowerCase();
  const port = parseInt(document.getElementById("port").value, 10);
  const hideEmpty = document.getElementById("hide-empty").checked;
  const named = name => name.toLowerCase().includes(text);
  const colVisible = data.columns.map((col, c) =>
    (!text || named(col.name)) && (!hideEmpty || usedCols.has(c)));
  const anyColumnNamed = data.columns.some((col, c) => colVisible[c] && text && named(col.name));
  const rowVisible = data.rows.map((names, r) =>
    (!text || anyColumnNamed || names.some(e => named(e.name)))
      && (!hideEmpty || usedRows.has(r)));
  const hits = data.services.map(s => !isNaN(port) && portMatches(s.ranges, port));
  table.querySelectorAll("thead th[data-col]").forEach(th => {
    th.style.display = colVisible[Number(th.dataset.col)] ? "" : "none";
  });
  cellNodes.forEach(([td, cell]) => {
    td.style.display = colVisible[Number(td.dataset.col)] ? "" : "none";
    if (cell) td.classList.toggle("hit", hits[cell[3]]);
  });
  table.querySelectorAll("tbody tr").forEach(tr => {
    tr.style.display = rowVisible[Number(tr.dataset.row)] ? "" : "none";
  });
}

build();
table.addEventListener("click", event => onCell(event, td => {
  location.hash = encodeURIComponent(data.rows[Number(td.dataset.row)][0].name + " -> "
    + td.dataset.dst);
}));
table.addEventListener("mouseover", event => onCell(event, (td, cell) => {
  if (!td.title) td.title = cellRules(cell).map(rule => rule.label + " at " + rule.location)
    .join("\n");
}));
window.addEventListener("hashchange", openFromHash);
["filter", "port", "hide-empty"].forEach(id =>
  document.getElementById(id).addEventListener("input", applyFilters));
applyFilters();
openFromHash();
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
source; yellow: only some. Sources with the same access share a row. Click a cell
for its rules (the address then links to it).</div>
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
