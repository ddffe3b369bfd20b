"""A JSON Schema (draft 2020-12) of the policy file, for editors without the server.

It describes shape only (sections, fields, JSON types, name prefixes), which
is what an editor's JSON mode can check while typing; alias syntax, ports and
cross-references stay `policyc check`'s job. The field lists are the
builders' own (`build.py`, `build_rules.py`), and a test compares them, so a
field the model learns is a field the schema knows.
"""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "https://policyc.dev/schema/policy.json"  # an identifier, never fetched

_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


def _strings(description: str) -> dict[str, Any]:
    return {**_STRINGS, "description": description}


def _aliases(description: str) -> dict[str, Any]:
    return _strings(description + " Each entry is an alias: `*`, a user (`alice@example.com`), "
                    "`group:…`, `tag:…`, `autogroup:…`, a host or `ipset:` name, an IP "
                    "address, CIDR prefix or range.")


def _object(description: str, properties: dict[str, Any],
            required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object of known fields; Tailscale reads an optional field set to null as absent."""
    fields = {name: prop if name in required else _nullable(prop)
              for name, prop in properties.items()}
    out: dict[str, Any] = {"type": "object", "description": description,
                           "properties": fields, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    if "type" in prop:
        return {**prop, "type": [prop["type"], "null"]}
    return {"anyOf": [prop, {"type": "null"}], "description": prop.get("description", "")}


def _named_map(description: str, pattern: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description,
            "propertyNames": {"pattern": pattern}, "additionalProperties": value}


_SRC_POSTURE = _strings("Posture names (`posture:…`) the source device must satisfy.")
_APP = {
    "type": "object",
    "description": "Application capabilities: `domain/path` -> an array of JSON values "
                   "(usually objects) passed to the application.",
    "propertyNames": {"pattern": "^[^/ ]+/[^ ]+$"},
    "additionalProperties": {"type": "array"},
}

ACL = _object(
    "An ACL rule: `src` may reach the `dst` ports (Tailscale's legacy rule form).",
    {
        "action": {"type": "string", "pattern": r"^\s*accept\s*$",
                   "description": "Always `accept`."},
        "src": _aliases("Who the rule allows."),
        "dst": _strings("Destinations as `ALIAS:PORTS`, e.g. `tag:web:80,443`, "
                        "`10.0.0.0/8:*`, `[fd7a:115c:a1e0::1]:22`."),
        "proto": {"type": "string", "description": "An IP protocol name (`tcp`, `udp`, "
                  "`icmp`, ...) or number; omitted: TCP, UDP and ICMP."},
        "srcPosture": _SRC_POSTURE,
        "users": _aliases("Deprecated spelling of `src`."),
        "ports": _strings("Deprecated spelling of `dst`."),
    },
    required=("action",),
)

GRANT = _object(
    "A grant: `src` receives the `ip` and `app` capabilities on `dst`.",
    {
        "src": _aliases("Who receives the capabilities."),
        "dst": _aliases("Where the capabilities apply."),
        "ip": _strings("Network capabilities: `*`, `PORTS` or `PROTO:PORTS`, e.g. "
                       "`tcp:443`, `icmp:*`, `22`."),
        "app": _APP,
        "via": _strings("Tags of the routers (subnet routers or exit nodes) the grant "
                        "applies through."),
        "srcPosture": _SRC_POSTURE,
    },
    required=("src", "dst"),
)

SSH = _object(
    "A Tailscale SSH rule.",
    {
        "action": {"type": "string", "pattern": r"^\s*(accept|check)\s*$",
                   "description": "`accept`, or `check` to require a recent login."},
        "src": _aliases("Who may connect."),
        "dst": _aliases("Which nodes they may connect to."),
        "users": _strings("Local users: names, `autogroup:nonroot`, `localpart:*@domain`."),
        "checkPeriod": {"type": "string", "description": "How long a `check` lasts, "
                        "e.g. `12h`, or `always`."},
        "acceptEnv": _strings("Environment variable names (with `*` and `?` wildcards) "
                              "the client may send."),
        "srcPosture": _SRC_POSTURE,
        "recorder": _strings("Tags of the session recorder nodes that record these sessions."),
        "enforceRecorder": {"type": "boolean", "description": "Refuse the session when no "
                            "recorder can be reached."},
    },
    required=("action", "users"),  # Tailscale accepts a rule without src or dst
)

NODE_ATTR = _object(
    "Attributes for the nodes the target matches.",
    {
        "target": _aliases("Nodes that receive the attributes."),
        "attr": _strings("Node attribute names."),
        "ipPool": _strings("Prefixes to assign addresses from."),
        "app": _APP,
    },
    required=("target",),
)

TEST = _object(
    "A policy test: `src` must reach every `accept` entry and none of the `deny` entries.",
    {
        "src": {"type": "string", "description": "A user, group, tag, host or address."},
        "srcPostureAttrs": {"type": "object", "description": "Posture attributes the source "
                            "is assumed to have (`{\"node:os\": \"windows\"}`); policyc "
                            "does not evaluate postures.",
                            "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "proto": {"type": "string", "description": "`tcp`, `udp`, `sctp` or empty."},
        "accept": _strings("`HOST:PORT` entries that must be allowed."),
        "allow": _strings("Legacy name of `accept`."),
        "user": {"type": "string", "description": "Legacy name of `src`."},
        "deny": _strings("`HOST:PORT` entries that must be denied."),
    },
    required=(),
) | {"anyOf": [{"required": ["src"]}, {"required": ["user"]}]}  # `src` or its legacy name

SSH_TEST = _object(
    "An SSH test: what `src` may do as each local user on the `dst` nodes.",
    {
        "src": {"type": "string", "description": "A user, group or tag."},
        "dst": _aliases("The nodes tested."),
        "accept": _strings("Local users `src` may log in as without a check."),
        "check": _strings("Local users that need a check."),
        "deny": _strings("Local users `src` may not log in as."),
    },
    required=("src", "dst"),
)

SECTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "acls": {"type": "array", "items": ACL,
             "description": "ACL rules. With neither `acls` nor `grants` everything is "
                            "allowed; an empty list denies everything."},
    "grants": {"type": "array", "items": GRANT, "description": "Grants (capability rules)."},
    "ssh": {"type": "array", "items": SSH, "description": "Tailscale SSH rules."},
    "groups": _named_map("Groups of users: `group:NAME` -> login names.", "^group:.+",
                         _strings("Login names such as `alice@example.com`.")),
    "tagOwners": _named_map("Tags and who may apply them: `tag:NAME` -> owners.", "^tag:.+",
                            _aliases("Users, groups, tags or autogroups owning the tag.")),
    "hosts": _named_map("Named addresses: NAME -> an IP address or CIDR prefix.",
                        "^[^@: \t]+$", {"type": "string", "description": "IP or prefix."}),
    "ipsets": _named_map("Named address sets: `ipset:NAME` -> addresses, prefixes, ranges, "
                         "hosts or other ipsets, each optionally prefixed `add ` or "
                         "`remove `.", "^ipset:.+", _STRINGS),
    "postures": _named_map("Device posture conditions: `posture:NAME` -> conditions.",
                           "^posture:.+", _strings("Conditions such as "
                                                   "`node:os IN ['linux']`.")),
    "autoApprovers": _object("Who may advertise routes and exit nodes without approval.", {
        "routes": {"type": "object", "description": "Prefix -> approvers.",
                   "additionalProperties": _aliases("Approvers.")},
        "exitNode": _aliases("Who may advertise an exit node."),
        "services": _named_map("Tailscale Services: `svc:NAME` (or `tag:NAME`) -> who may "
                               "host it.", "^\\s*(svc|tag):.+",
                               _aliases("Approvers.")),
    }),
    "nodeAttrs": {"type": "array", "items": NODE_ATTR, "description": "Node attributes."},
    "defaultSrcPosture": _strings("Postures applied to every rule without `srcPosture`."),
    "tests": {"type": "array", "items": TEST, "description": "Policy tests, run by "
              "`policyc check`."},
    "sshTests": {"type": "array", "items": SSH_TEST, "description": "SSH policy tests."},
}

OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "disableIPv4": {"type": "boolean", "description": "Stop assigning IPv4 addresses."},
    "randomizeClientPort": {"type": "boolean",
                            "description": "Clients use a random WireGuard port."},
    "OneCGNATRoute": {"type": "string", "description": "How CGNAT routes are installed."},
    "derpMap": {"type": "object", "description": "A custom DERP map."},
    "attrConfig": {"type": "object", "description": "Node attribute configuration."},
    "autogroups": {"type": "object", "description": "Autogroup settings."},
    "$schema": {"type": "string", "description": "This schema's URL, for editors."},
}


def policy_schema() -> dict[str, Any]:
    """The whole schema as a JSON-ready dict."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "policyc / Tailscale policy file",
        "description": "A tailnet policy file (HuJSON): groups, tags, hosts, acls, grants, "
                       "ssh and their tests. See docs/policy-reference.md.",
        "type": "object",
        # A section set to null is the section left out (Go's decoder, as in rules).
        "properties": {name: _nullable(prop)
                       for name, prop in {**SECTION_SCHEMAS, **OPTION_SCHEMAS}.items()},
        "additionalProperties": False,
    }
