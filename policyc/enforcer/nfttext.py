"""Print a rendered ruleset in nft's own syntax, for the `policyc nft` dry run.

A small deterministic printer for exactly the vocabulary nftrender emits
(no nft, no root needed). The output is loadable with `nft -f`: it starts
with the same add/delete/add replace idiom as the JSON.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
_INDENT = "\t"


def render_text(ruleset: Json) -> str:
    """nft syntax for a ruleset from `render_ruleset` / `fail_closed_ruleset`."""
    commands = [c["add"] for c in ruleset["nftables"] if "add" in c]
    table = next(c["table"] for c in commands if "table" in c)
    name = f"{table['family']} {table['name']}"
    lines = [f"table {name}", f"delete table {name}", f"table {name} {{"]
    for command in commands:
        if "counter" in command:
            lines += [f"{_INDENT}counter {command['counter']['name']} {{", f"{_INDENT}}}"]
        elif "set" in command:
            lines += _set_lines(command["set"])
        elif "map" in command:
            lines += _map_lines(command["map"])
    chains = [c["chain"] for c in commands if "chain" in c]
    rules = [c["rule"] for c in commands if "rule" in c]
    for chain in chains:
        lines += _chain_lines(chain, [r for r in rules if r["chain"] == chain["name"]])
    lines.append("}")
    return "\n".join(lines) + "\n"


def _set_lines(body: Json) -> list[str]:
    lines = [f"{_INDENT}set {body['name']} {{",
             f"{_INDENT * 2}type {' . '.join(body['type'])}",
             f"{_INDENT * 2}flags {', '.join(body['flags'])}"]
    elems = [_value(e) for e in body.get("elem", ())]
    return [*lines, *_elements_lines(elems), f"{_INDENT}}}"]


def _elements_lines(elems: list[str]) -> list[str]:
    """`elements = { a,` then one element per line, as `nft list` prints them."""
    if not elems:
        return []
    lines = [f"{_INDENT * 2}elements = {{ {elems[0]},"]
    lines += [f"{_INDENT * 3}     {e}," for e in elems[1:]]
    lines[-1] = lines[-1][:-1] + " }"
    return lines


def _map_lines(body: Json) -> list[str]:
    lines = [f"{_INDENT}map {body['name']} {{",
             f"{_INDENT * 2}type {body['type']} : {body['map']}",
             f"{_INDENT * 2}flags {', '.join(body['flags'])}"]
    elems = [f"{_value(key)} : {_statement(verdict)}" for key, verdict in body.get("elem", ())]
    return [*lines, *_elements_lines(elems), f"{_INDENT}}}"]


def _chain_lines(chain: Json, rules: list[Json]) -> list[str]:
    lines = [f"{_INDENT}chain {chain['name']} {{"]
    if "hook" in chain:
        lines.append(f"{_INDENT * 2}type {chain['type']} hook {chain['hook']} "
                     f"priority {chain['prio']}; policy {chain['policy']};")
    lines += [_INDENT * 2 + " ".join(_expr(e) for e in rule["expr"]) for rule in rules]
    lines.append(f"{_INDENT}}}")
    return lines


def _value(value: Any) -> str:
    """A right-hand value or set element."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"unexpected value {value!r}")
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list):
        return ",".join(_value(v) for v in value)
    if "concat" in value:
        return " . ".join(_value(v) for v in value["concat"])
    if "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if "range" in value:
        return f"{value['range'][0]}-{value['range'][1]}"
    if "set" in value:
        return "{ " + ", ".join(_value(v) for v in value["set"]) + " }"
    raise ValueError(f"unexpected value {value!r}")


def _operand(expr: Any) -> str:
    """A left-hand side: payload, meta, ct, concatenation or bitmask."""
    if "payload" in expr:
        return f"{expr['payload']['protocol']} {expr['payload']['field']}"
    if "meta" in expr:
        key = expr["meta"]["key"]
        return key if key in ("iifname", "oifname") else f"meta {key}"
    if "ct" in expr:
        return f"ct {expr['ct']['key']}"
    if "concat" in expr:
        return " . ".join(_operand(e) for e in expr["concat"])
    if "&" in expr:
        left, mask = expr["&"]
        return f"{_operand(left)} & ({' | '.join(mask)})"
    if "|" in expr:
        left, bits = expr["|"]
        return f"{_operand(left)} | {bits:#010x}"
    raise ValueError(f"unexpected operand {expr!r}")


def _expr(expr: Json) -> str:
    if "match" in expr:
        match = expr["match"]
        left = _operand(match["left"])
        right = match["right"]
        shown = f'"{right}"' if left in ("iifname", "oifname") else _value(right)
        op = "!= " if match["op"] == "!=" else ""
        return f"{left} {op}{shown}"
    if "mangle" in expr:
        mangle = expr["mangle"]
        return f"{_operand(mangle['key'])} set {_operand(mangle['value'])}"
    return _statement(expr)


def _statement(expr: Json) -> str:
    (kind, arg), = expr.items()
    if kind in ("accept", "drop"):
        return str(kind)
    if kind == "jump":
        return f"jump {arg['target']}"
    if kind == "vmap":
        return f"{_operand(arg['key'])} vmap {arg['data']}"
    if kind == "counter":
        return f'counter name "{arg}"'
    if kind == "limit":
        return f"limit rate {arg['rate']}/{arg['per']} burst {arg['burst']} packets"
    if kind == "log":
        return f'log prefix "{arg["prefix"]}" level {arg["level"]}'
    if kind == "reject":
        return f"reject with {arg['type']}"
    raise ValueError(f"unexpected statement {expr!r}")
