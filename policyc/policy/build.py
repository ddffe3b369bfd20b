"""HuJSON value tree -> typed `Policy`.

This stage checks shape: known sections and fields (E101), JSON types
(E102), required fields (E103), and the syntax of every alias, port and
protocol string (via `aliases.py`). Cross-references (is this group
defined? is autogroup:self allowed here?) are `validate.py`'s job.

It never stops at the first problem: a bad item is reported and skipped,
and the rest of the file is still built, so one run shows every error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import repeat
from typing import Any

from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.cst import JArray, JNull, JString, JValue, to_python
from policyc.policy.aliases import parse_alias, parse_network
from policyc.policy.build_rules import (
    build_acl,
    build_app,
    build_grant,
    build_ssh,
    build_ssh_test,
    build_test,
)
from policyc.policy.jsonread import Reader, has_items, list_of
from policyc.policy.model import (
    Alias,
    AutoApprovers,
    Group,
    HostAlias,
    IPSet,
    NodeAttr,
    Policy,
    Posture,
    RouteApprover,
    ServiceApprover,
    ServiceRef,
    TagOwners,
    TagRef,
    TailnetOptions,
)

# Top-level keys Tailscale accepts that do not affect access; kept verbatim.
EXTRA_OPTIONS = frozenset({"attrConfig", "autogroups", "$schema"})

# --- definitions --------------------------------------------------------------


def build_groups(r: Reader, value: JValue) -> dict[str, Group]:
    obj = r.obj(value, "groups")
    out: dict[str, Group] = {}
    for member in obj.members if obj else ():
        name = member.key.value
        if not name.startswith("group:") or len(name) == len("group:"):
            r.diags.error("E116", member.key.span, f'group name "{name}" must start with "group:"')
            continue
        array = r.arr(member.value, f'groups["{name}"]', "an array of users")
        logins = _group_logins(r, name, array) if array is not None else ()
        out[name] = Group(name, logins, member.span)
    return out


def _group_logins(r: Reader, group: str, array: JArray) -> tuple[str, ...]:
    """The members' logins. All strings, all valid (the usual case): C-level passes
    over the values, no object per member; else item by item, with diagnostics."""
    values = array.string_values()
    if values is not None:
        logins = tuple(map(str.strip, values))
        if all(map(str.__contains__, logins, repeat("@"))) \
                and not any(map(str.startswith, logins, repeat("group:"))):
            return logins
    out = []
    for member in r.strings(array, f'groups["{group}"]'):
        text = member.value.strip()
        if text.startswith("group:"):
            r.diags.error("E108", member.span,
                          f'groups["{group}"]: "{text}": group members cannot be recursive')
        elif "@" not in text:
            r.diags.error("E109", member.span,
                          f'groups["{group}"]: username must contain @, got: "{text}"')
        else:
            out.append(text)
    return tuple(out)


def build_tag_owners(r: Reader, value: JValue) -> dict[str, TagOwners]:
    obj = r.obj(value, "tagOwners")
    out: dict[str, TagOwners] = {}
    for member in obj.members if obj else ():
        tag = parse_alias(member.key.value, member.key.span, r.diags, position="tagOwners")
        if tag is None:
            continue
        if not isinstance(tag, TagRef):
            r.diags.error("E116", member.key.span,
                          f'tagOwners key "{member.key.value}" must start with "tag:"')
            continue
        owners = r.aliases(member.value, f'tagOwners["{tag.name}"]')
        out[tag.name] = TagOwners(tag.name, owners, member.span)
    return out


def build_hosts(r: Reader, value: JValue) -> dict[str, HostAlias]:
    obj = r.obj(value, "hosts")
    out: dict[str, HostAlias] = {}
    for member in obj.members if obj else ():
        name = member.key.value
        if not name or any(c in name for c in "@: \t"):
            r.diags.error("E116", member.key.span,
                          f'host name "{name}" must not be empty or contain "@", ":" or spaces')
            continue
        text = r.string(member.value, f'hosts["{name}"]')
        network = parse_network(text.value.strip()) if text is not None else None
        if text is not None and network is None:
            r.diags.error("E110", text.span,
                          f'hosts["{name}"]: hostname contains invalid IP address "{text.value}"')
        if network is not None:
            out[name] = HostAlias(name, network, member.span)
    return out


def build_ipsets(r: Reader, value: JValue) -> dict[str, IPSet]:
    obj = r.obj(value, "ipsets")
    out: dict[str, IPSet] = {}
    for member in obj.members if obj else ():
        name = member.key.value
        if not name.startswith("ipset:") or len(name) == len("ipset:"):
            r.diags.error("E116", member.key.span, f'ipset name "{name}" must start with "ipset:"')
            continue
        out[name] = _ipset(r, name, member.value, member.span)
    return out


def _ipset(r: Reader, name: str, value: JValue, span: Span) -> IPSet:
    """Entries are selectors, optionally prefixed `add ` or `remove `, applied in
    the order written (KB "IP sets")."""
    steps: list[tuple[bool, Alias]] = []
    for item in r.strings(value, f'ipsets["{name}"]'):
        verb, _, rest = item.value.strip().partition(" ")
        add, text = {"add": (True, rest), "remove": (False, rest)}.get(verb, (True, item.value))
        alias = parse_alias(text, item.span, r.diags, position=f'ipsets["{name}"]')
        if alias is not None:
            steps.append((add, alias))
    return IPSet(name, tuple(a for add, a in steps if add), span,
                 tuple(a for add, a in steps if not add), tuple(steps))


def build_postures(r: Reader, value: JValue) -> dict[str, Posture]:
    obj = r.obj(value, "postures")
    out: dict[str, Posture] = {}
    for member in obj.members if obj else ():
        name = member.key.value
        if not name.startswith("posture:") or len(name) == len("posture:"):
            r.diags.error("E126", member.key.span,
                          f'posture name "{name}" must start with "posture:"')
            continue
        conditions = r.names(member.value, f'postures["{name}"]')
        out[name] = Posture(name, conditions, member.span)
    return out


def build_auto_approvers(r: Reader, value: JValue) -> AutoApprovers:
    obj = r.obj(value, "autoApprovers")
    if obj is None:
        return AutoApprovers()
    f = r.fields(obj, "autoApprovers", frozenset({"routes", "exitNode", "services"}))
    routes = []
    routes_obj = r.obj(f["routes"], "autoApprovers.routes") if "routes" in f else None
    for member in routes_obj.members if routes_obj else ():
        prefix = parse_network(member.key.value.strip())
        if prefix is None:
            r.diags.error("E110", member.key.span,
                          f'autoApprovers.routes: "{member.key.value}" is not a valid prefix')
            continue
        approvers = r.aliases(member.value, "autoApprovers")
        routes.append(RouteApprover(prefix, approvers, member.span))
    exit_node = r.aliases(f["exitNode"], "autoApprovers") if "exitNode" in f else ()
    services = _service_approvers(r, f["services"]) if "services" in f else ()
    return AutoApprovers(tuple(routes), exit_node, obj.span, services)


def _service_approvers(r: Reader, value: JValue) -> tuple[ServiceApprover, ...]:
    """`autoApprovers.services`: `svc:NAME` or `tag:NAME` -> approvers (KB
    "Tailscale Services"; public policies use both key forms)."""
    obj = r.obj(value, "autoApprovers.services")
    out = []
    for member in obj.members if obj else ():
        key = member.key.value.strip()
        service = parse_alias(key, member.key.span, r.diags, position="autoApprovers.services")
        if service is not None and not isinstance(service, ServiceRef | TagRef):
            r.diags.error("E123", member.key.span, f'autoApprovers.services: "{key}" must be '
                          "a service (svc:NAME) or a tag (tag:NAME)")
            continue
        approvers = r.aliases(member.value, "autoApprovers")
        if service is not None:
            out.append(ServiceApprover(key, approvers, member.span))
    return tuple(out)


NODE_ATTR_FIELDS = frozenset({"target", "attr", "ipPool", "app"})


def build_node_attr(r: Reader, value: JValue) -> NodeAttr | None:
    obj = r.obj(value, "nodeAttrs entry")
    if obj is None:
        return None
    f = r.fields(obj, "nodeAttrs entry", NODE_ATTR_FIELDS, required=("target",))
    targets = r.aliases(f["target"], "nodeAttrs target") if "target" in f else ()
    pools = []
    for item in r.strings(f["ipPool"], "ipPool") if "ipPool" in f else ():
        network = parse_network(item.value.strip())
        if network is None:
            r.diags.error("E110", item.span, f'ipPool "{item.value}": invalid prefix')
        else:
            pools.append(network)
    app = build_app(r, f["app"], node_attrs=True) if "app" in f else ()
    if not any(has_items(f.get(key)) for key in ("attr", "app", "ipPool")):
        # Captured 200 (nodeattrs-error-e1-empty); decided on what was written,
        # so a rejected app entry does not also count as "nothing given".
        r.diags.warning("W208", obj.span, "nodeAttrs entry gives nothing: no attr, app or "
                        "ipPool")
    if "target" not in f:
        return None
    return NodeAttr(targets, r.names(f.get("attr"), "attr"), tuple(pools), app, obj.span)


def _options(r: Reader, f: Mapping[str, JValue]) -> TailnetOptions:
    cgnat = r.string(f["OneCGNATRoute"], "OneCGNATRoute") if "OneCGNATRoute" in f else None
    derp = f.get("derpMap")
    if derp is not None:
        r.obj(derp, "derpMap")
    return TailnetOptions(
        disable_ipv4=r.boolean(f["disableIPv4"], "disableIPv4") if "disableIPv4" in f else False,
        randomize_client_port=(r.boolean(f["randomizeClientPort"], "randomizeClientPort")
                               if "randomizeClientPort" in f else False),
        one_cgnat_route=cgnat.value if cgnat is not None else "",
        derp_map=to_python(derp) if derp is not None else None,
        extra={k: to_python(v) for k, v in f.items() if k in EXTRA_OPTIONS},
    )


# --- the whole file -----------------------------------------------------------

# section key -> (Policy field, builder)
SECTIONS: dict[str, tuple[str, Callable[[Reader, JValue], Any]]] = {
    "acls": ("acls", list_of(build_acl)),
    "grants": ("grants", list_of(build_grant)),
    "ssh": ("ssh", list_of(build_ssh)),
    "groups": ("groups", build_groups),
    "tagOwners": ("tag_owners", build_tag_owners),
    "hosts": ("hosts", build_hosts),
    "ipsets": ("ipsets", build_ipsets),
    "postures": ("postures", build_postures),
    "autoApprovers": ("auto_approvers", build_auto_approvers),
    "nodeAttrs": ("node_attrs", list_of(build_node_attr)),
    "defaultSrcPosture": ("default_src_posture", lambda r, v: r.names(v, "defaultSrcPosture")),
    "tests": ("tests", list_of(build_test)),
    "sshTests": ("ssh_tests", list_of(build_ssh_test)),
}
OPTION_KEYS = frozenset({"disableIPv4", "randomizeClientPort", "OneCGNATRoute", "derpMap"})
TOP_LEVEL_KEYS = frozenset(SECTIONS) | OPTION_KEYS | EXTRA_OPTIONS


def build_policy(tree: JValue | None, source: SourceFile, diags: Diagnostics) -> Policy:
    """The typed policy, best effort; callers check `diags.has_errors`."""
    if tree is None:
        return Policy(source)  # empty file: no acls/grants, so allow-all
    r = Reader(diags, fold_case=True)
    obj = r.obj(tree, "policy")
    if obj is None:
        return Policy(source)
    # A section set to null is a section left out: SaaS decodes null as Go's zero
    # value (captured: `"users": null` is "users must be specified", a null
    # `acceptEnv`/`checkPeriod` is the field omitted), and a nil section is absent.
    f = {key: value for key, value in r.fields(obj, "policy", TOP_LEVEL_KEYS).items()
         if not isinstance(value, JNull)}
    kwargs: dict[str, Any] = {}
    for key, (field_name, build) in SECTIONS.items():
        if key in f:
            kwargs[field_name] = build(r, f[key])
    if "defaultSrcPosture" in f:
        _check_default_postures(r, f["defaultSrcPosture"], kwargs.get("postures", {}))
    return Policy(source, options=_options(r, f), **kwargs)


def _check_default_postures(r: Reader, value: JValue, postures: Mapping[str, Posture]) -> None:
    """Each `defaultSrcPosture` name must be defined. Checked here, not in
    validate.py, because only the tree knows where each name is written."""
    for item in value.items if isinstance(value, JArray) else ():
        if isinstance(item, JString) and item.value not in postures:
            r.diags.error("E126", item.span, f'posture "{item.value}" is not defined',
                          suggestion=did_you_mean(item.value, postures))
