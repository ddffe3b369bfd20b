"""Build the rule sections (`acls`, `grants`, `ssh`) and the tests (`tests`, `sshTests`).

Shape and string syntax only; cross-references are checked in `validate.py`.
"""

from __future__ import annotations

from policyc.grammar.cst import JArray, JBool, JNull, JNumber, JObject, JString, JValue, to_python
from policyc.netmap import PortRange
from policyc.policy.aliases import (
    PORTED_PROTOCOLS,
    check_ports_allowed,
    parse_alias,
    parse_check_period,
    parse_destination,
    parse_ip_capability,
    parse_protocol,
)
from policyc.policy.jsonread import Reader, has_items
from policyc.policy.model import (
    AclDestination,
    AclRule,
    Alias,
    AppCapability,
    AutoGroupRef,
    GrantRule,
    IPCapability,
    PolicyTest,
    PrefixAlias,
    RangeAlias,
    SshRule,
    SshTest,
    TagRef,
    TestTarget,
    Wildcard,
)

# --- rules --------------------------------------------------------------------

ACL_FIELDS = frozenset({"action", "src", "dst", "proto", "srcPosture", "users", "ports"})


def build_acl(r: Reader, value: JValue) -> AclRule | None:
    obj = r.obj(value, "acl rule")
    if obj is None:
        return None
    f = r.fields(obj, "acl rule", ACL_FIELDS)
    # `users`/`ports` are Tailscale's original names for `src`/`dst`.
    src, dst = f.get("src", f.get("users")), f.get("dst", f.get("ports"))
    for name, present in (("action", "action" in f), ("src", src), ("dst", dst)):
        if not present:
            r.diags.error("E103", obj.span, f'acl rule: missing required field "{name}"')
    action = r.string(f["action"], "action") if "action" in f else None
    if action is not None and action.value != "accept":
        r.diags.error("E115", action.span, f'action="{action.value}" is not supported')
    sources = r.aliases(src, "src") if src is not None else ()
    destinations = _acl_destinations(r, dst) if dst is not None else ()
    protocols = _acl_protocols(r, _optional(f, "proto"), destinations)
    # A rule with errors is still returned (its good parts) so that validation
    # can report undefined names in it too; the policy as a whole is rejected.
    return AclRule("accept", sources, destinations, protocols,
                   r.names(_optional(f, "srcPosture"), "srcPosture"), obj.span)


def _acl_destinations(r: Reader, value: JValue) -> tuple[AclDestination, ...]:
    out = []
    for item in r.strings(value, "dst"):
        destination = parse_destination(item.value, item.span, r.diags)
        if destination is not None:
            out.append(destination)
    return tuple(out)


def _acl_protocols(r: Reader, value: JValue | None,
                   destinations: tuple[AclDestination, ...]) -> tuple[int, ...]:
    """The rule's protocol as a 1-tuple; empty when omitted (the default set)."""
    text = r.string(value, "proto") if value is not None else None
    if text is None or not text.value.strip():
        return ()
    protocol = parse_protocol(text.value, text.span, r.diags)
    if protocol is None:
        return ()
    for destination in destinations:
        check_ports_allowed(protocol, destination.ports, text.value, destination.span, r.diags)
    return (protocol,)


GRANT_FIELDS = frozenset({"src", "dst", "ip", "app", "via", "srcPosture"})


def build_grant(r: Reader, value: JValue) -> GrantRule | None:
    obj = r.obj(value, "grant")
    if obj is None:
        return None
    f = r.fields(obj, "grant", GRANT_FIELDS, required=("src", "dst"))
    sources = r.aliases(f["src"], "src") if "src" in f else ()
    destinations = r.aliases(f["dst"], "dst") if "dst" in f else ()
    # Optional fields set to null are absent, as Go's decoder reads them (KB
    # "Route filtering with Via": omit via "(or set it to [] or null)").
    ip = _ip_caps(r, f["ip"]) if _present(f, "ip") else ()
    app = build_app(r, f["app"]) if _present(f, "app") else ()
    via = _via(r, f["via"]) if _present(f, "via") else ()
    if not has_items(f.get("ip")) and not has_items(f.get("app")):
        r.diags.error("E119", obj.span, "ip and app can not both be empty")
    return GrantRule(sources, destinations, ip, app, via,
                     r.names(_optional(f, "srcPosture"), "srcPosture"), obj.span)


def _ip_caps(r: Reader, value: JValue) -> tuple[IPCapability, ...]:
    out = []
    for item in r.strings(value, "ip"):
        capability = parse_ip_capability(item.value, item.span, r.diags)
        if capability is not None:
            out.append(capability)
    return tuple(out)


def _via(r: Reader, value: JValue) -> tuple[TagRef, ...]:
    out = []
    for alias in r.aliases(value, "via"):
        if isinstance(alias, TagRef):
            out.append(alias)
        else:
            r.diags.error("E119", alias.span, f'via "{alias}": via can only be a tag')
    return tuple(out)


# Under tailscale.com/ only these capabilities may be granted (POLICY-FORMAT
# §3.2): an allow-list. Captured accepted: drive, kubernetes, relay, webui;
# captured rejected: funnel, ingress, relay-target. golink is documented by
# Tailscale's golink; tsidp and secrets by their own projects; pam by Tailscale
# PAM (KB tailzero: PAM grants are read from "tailscale.com/cap/pam"), and the
# admin console adds such a grant itself when PAM is enabled (kevindurb/k8s,
# tests/corpus: "Automatically added by enabling PAM"). tailsql: Tailscale's
# grants announcement (blog, 2023-12) and its KB "Troubleshooting grants" ("Example
# of a correct application capability grant") both grant "tailscale.com/cap/tailsql".
# databases (Tailscale's tsdb database connector): keiretsu-labs/kubernetes-manifests
# applied grants naming it through gitops-acl-action in 69 revisions (2026-02..07).
ALLOWED_TAILSCALE_CAPS = frozenset(
    f"tailscale.com/cap/{name}"
    for name in ("drive", "relay", "webui", "kubernetes", "tsidp", "secrets", "golink", "pam",
                 "tailsql", "databases")
)
# nodeAttrs `app` names Tailscale documents (KB "App connectors").
APP_CONNECTORS = "tailscale.com/app-connectors"
APP_CONNECTOR_FIELDS = frozenset({"name", "connectors", "domains", "presetAppID", "routes"})


def build_app(r: Reader, value: JValue, *, node_attrs: bool = False) -> tuple[AppCapability, ...]:
    obj = r.obj(value, "app")
    if obj is None:
        return ()
    out = []
    for member in obj.members:
        name = member.key
        if node_attrs and name.value == APP_CONNECTORS:
            _check_app_connectors(r, member.value)
        elif not _check_cap_name(r, name):
            continue
        # Values are any JSON (tailcfg.RawMessage): SaaS applied a policy with
        # `"tailscale.com/cap/relay": [""]` (ponomarev-studio/VPN, in the corpus).
        r.arr(member.value, f'app "{name.value}"', "an array of JSON values")
        out.append(AppCapability(name.value, to_python(member.value), name.span))
    return tuple(out)


def _check_app_connectors(r: Reader, value: JValue) -> None:
    """`[{"name", "connectors": [tags], "domains": [...], "presetAppID"}]`."""
    for item in (value.items if isinstance(value, JArray) else ()):
        obj = r.obj(item, APP_CONNECTORS)
        if obj is None:
            continue
        for field in obj.members:
            if field.key.value not in APP_CONNECTOR_FIELDS:
                r.diags.warning("W207", field.key.span, f'{APP_CONNECTORS}: field '
                                f'"{field.key.value}" is not documented; passed through '
                                "unchecked")
        for connector in r.strings(obj.get("connectors") or JArray((), obj.span), "connectors"):
            if not (connector.value.startswith("tag:") or connector.value == "*"):
                r.diags.error("E127", connector.span, f'{APP_CONNECTORS}: connector '
                              f'"{connector.value}" must be a tag')
        r.strings(obj.get("domains") or JArray((), obj.span), "domains")


def _check_cap_name(r: Reader, name: JString) -> bool:
    domain, slash, path = name.value.partition("/")
    if "://" in name.value or not slash or not domain or not path or " " in name.value:
        r.diags.error("E128", name.span,
                      f'"{name.value}": capability name must have the form {{domain}}/{{path}}')
        return False
    if domain == "tailscale.com" and name.value not in ALLOWED_TAILSCALE_CAPS:
        r.diags.error("E128", name.span,
                      f'"{name.value}": capability name must not be in the tailscale.com domain')
        return False
    return True


SSH_FIELDS = frozenset({"action", "src", "dst", "users", "checkPeriod", "acceptEnv", "srcPosture",
                        "recorder", "enforceRecorder"})
LOCALPART_PREFIX = "localpart:"
# Users that look like aliases or patterns but that Tailscale maps literally (captured).
LITERAL_LOOKALIKES = ("autogroup:", "group:", "tag:")


def build_ssh(r: Reader, value: JValue) -> SshRule | None:
    """One `ssh` rule. Tailscale's leniencies are captured: surrounding whitespace is
    trimmed (action, users), null acceptEnv/checkPeriod mean absent, and a rule without
    src or dst is accepted and matches nothing."""
    obj = r.obj(value, "ssh rule")
    if obj is None:
        return None
    f = r.fields(obj, "ssh rule", SSH_FIELDS)
    action = _ssh_action(r, obj, f.get("action"))
    sources = r.aliases(f["src"], "ssh src") if _present(f, "src") else ()
    destinations = r.aliases(f["dst"], "ssh dst") if _present(f, "dst") else ()
    users = _ssh_users(r, obj, f.get("users"))
    period = None
    if _present(f, "checkPeriod") and (text := r.string(f["checkPeriod"], "checkPeriod")):
        period = parse_check_period(text.value, text.span, r.diags)
    accept_env = _accept_env(r, f["acceptEnv"]) if _present(f, "acceptEnv") else ()
    recorder = r.aliases(f["recorder"], "ssh recorder") if _present(f, "recorder") else ()
    enforce = (r.boolean(f["enforceRecorder"], "enforceRecorder")
               if _present(f, "enforceRecorder") else False)
    return SshRule(action, sources, destinations, users, period, accept_env,
                   r.names(_optional(f, "srcPosture"), "srcPosture"), obj.span, recorder, enforce)


def _present(f: dict[str, JValue], key: str) -> bool:
    """A field given with a value other than JSON null."""
    return key in f and not isinstance(f[key], JNull)


def _optional(f: dict[str, JValue], key: str) -> JValue | None:
    """An optional field's value; JSON null is the field left out."""
    return f[key] if _present(f, key) else None


def _ssh_action(r: Reader, obj: JObject, value: JValue | None) -> str:
    if value is None or isinstance(value, JNull):
        r.diags.error("E103", obj.span, "action must be specified")
        return ""
    text = r.string(value, "action")
    action = text.value.strip() if text is not None else ""
    if text is None or action in ("accept", "check"):
        return action
    message = f'"{action}" is not a valid action' if action else "action must be specified"
    r.diags.error("E115", text.span, message)
    return ""


def _ssh_users(r: Reader, obj: JObject, value: JValue | None) -> tuple[str, ...]:
    if value is None or isinstance(value, JNull):
        r.diags.error("E103", obj.span, "users must be specified")
        return ()
    if isinstance(value, JArray) and not value.items:
        r.diags.error("E120", value.span, "users must be specified")
        return ()
    users = r.strings(value, "users")
    for user in users:
        name = user.value.strip()
        if name in ("", "*"):
            r.diags.error("E120", user.span, f'user "{name}" is not valid')
        elif _taken_literally(name):
            # Tailscale accepts these and maps them as a literal login name (captured).
            r.diags.warning("W209", user.span,
                            f'ssh users: "{name}" is not a user pattern; Tailscale takes it '
                            "as the literal login name")
    return tuple(u.value.strip() for u in users)


def _taken_literally(user: str) -> bool:
    if user.startswith(LOCALPART_PREFIX):
        return localpart_domain(user) is None
    return user.startswith(LITERAL_LOOKALIKES) and user != "autogroup:nonroot"


def localpart_domain(user: str) -> str | None:
    """The domain of a `localpart:*@DOMAIN` entry; None for any other shape."""
    if not user.startswith(LOCALPART_PREFIX):
        return None
    local, at, domain = user.removeprefix(LOCALPART_PREFIX).rpartition("@")
    return domain if at and local == "*" and domain else None


def _accept_env(r: Reader, value: JValue) -> tuple[str, ...]:
    names = r.strings(value, "acceptEnv")
    for name in names:
        if not name.value:
            r.diags.error("E120", name.span, "acceptEnv values cannot be empty")
    return tuple(n.value for n in names)


# --- tests ----------------------------------------------------------------------

# `user` and `allow` are the original names of `src` and `accept`: Tailscale's
# own API client (tailscale-client-go-v2 policyfile.go, ACLTest) still carries
# both beside today's names, as ACL rules keep `users`/`ports`.
TEST_FIELDS = frozenset({"src", "srcPostureAttrs", "proto", "accept", "deny", "allow", "user"})
# "" is the default set. Tailscale also accepts a port-less protocol such as
# "icmp" (real policies applied through GitOps carry `"proto": "icmp"` tests
# with an `ALIAS:0` entry); any protocol an ACL `proto` accepts is taken.
TEST_DEFAULT_PROTOCOL = ""


def build_test(r: Reader, value: JValue) -> PolicyTest | None:
    obj = r.obj(value, "test")
    if obj is None:
        return None
    f = r.fields(obj, "test", TEST_FIELDS, required=() if "user" in _keys(obj) else ("src",))
    if "user" in f:
        r.diags.warning("W206", f["user"].span, 'test "user" is the legacy name of "src"',
                        suggestion="src")
    src_value = f.get("src", f.get("user"))
    src_text = r.string(src_value, "test src") if src_value is not None else None
    src = (parse_alias(src_text.value, src_text.span, r.diags, position="test src")
           if src_text is not None else None)
    protocol = _test_protocol(r, f.get("proto"))
    # Port-less protocols (ICMP...) match on addresses only, so their entries
    # may name port 0.
    zero_ok = protocol is not None and protocol not in PORTED_PROTOCOLS
    accept = _test_targets(r, f.get("accept"), "accept", zero_ok)
    if "allow" in f:
        # The legacy name of `accept`, still accepted by Tailscale.
        r.diags.warning("W206", f["allow"].span, 'test "allow" is the legacy name of "accept"',
                        suggestion="accept")
        accept += _test_targets(r, f["allow"], "allow", zero_ok)
    deny = _test_targets(r, f.get("deny"), "deny", zero_ok)
    if "srcPostureAttrs" in f:
        _test_posture_attrs(r, f["srcPostureAttrs"])
    if not any(has_items(f.get(key)) for key in ("accept", "allow", "deny")):
        r.diags.error("E125", obj.span, "test: needs at least one accept or deny entry")
    if src is None or src_text is None:
        return None
    return PolicyTest(src, src_text.value.strip(), protocol, accept, deny, obj.span)


def _keys(obj: JObject) -> set[str]:
    """The object's field names, folded to lower case as the reader matches them."""
    return {m.key.value.lower() for m in obj.members}


def _test_posture_attrs(r: Reader, value: JValue) -> None:
    """`srcPostureAttrs`: the posture attributes the test source is assumed to have
    (`{"node:os": "windows"}`; values are strings, numbers or booleans). Applied
    to Tailscale through gitops-acl-action by HomeScaleCloud/homescale-public
    (tests/corpus). Postures are not modelled, so the test is run without them."""
    obj = r.obj(value, "srcPostureAttrs")
    if obj is None:
        return
    for member in obj.members:
        if not isinstance(member.value, JString | JNumber | JBool):
            r.diags.error("E125", member.value.span, f'srcPostureAttrs "{member.key.value}": '
                          "expected a string, number or boolean")
    r.diags.warning("W207", obj.span, "srcPostureAttrs is accepted but not evaluated: policyc "
                    "does not model device postures, so this test runs as if every posture "
                    "held")


def _test_protocol(r: Reader, value: JValue | None) -> int | None:
    text = r.string(value, "test proto") if value is not None else None
    if text is None:
        return None
    if text.value.strip() == TEST_DEFAULT_PROTOCOL:
        return None
    return parse_protocol(text.value, text.span, r.diags)


def _test_targets(r: Reader, value: JValue | None, what: str,
                  zero_ok: bool) -> tuple[TestTarget, ...]:
    out = []
    for item in r.strings(value, f"test {what}") if value is not None else ():
        destination = parse_destination(item.value, item.span, r.diags, position=f"test {what}",
                                        zero_port_ok=zero_ok)
        if destination is None:
            continue
        problem = (_single_host_problem(destination.alias)
                   or _written_as_prefix(destination.alias, item.value)
                   or _single_port_problem(destination.ports))
        if problem:
            r.diags.error("E125", item.span, f'test {what} "{item.value}": {problem}')
            continue
        out.append(TestTarget(destination.alias, destination.ports[0].first,
                              item.value.strip(), item.span))
    return tuple(out)


def _single_host_problem(alias: Alias) -> str | None:
    """Why a test destination is not a single host, or None if it is."""
    if isinstance(alias, PrefixAlias) and alias.network.prefixlen < alias.network.max_prefixlen:
        return "a test destination must be a single host, not a prefix"
    if isinstance(alias, RangeAlias | Wildcard):
        return "a test destination must be a single host"
    if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:internet":
        return "autogroup:internet cannot be tested"
    return None


def _written_as_prefix(alias: Alias, text: str) -> str | None:
    """`100.64.0.16/32:22` names one address, yet Tailscale fails the test
    (captured: policytest-allpass-grants-only-tag-src-prefix32-dst); only a
    bare address is a host."""
    if isinstance(alias, PrefixAlias) and "/" in text.strip().rpartition(":")[0]:
        return "test destination must be a single host, not a CIDR range"
    return None


def _single_port_problem(ports: tuple[PortRange, ...]) -> str | None:
    if len(ports) != 1 or ports[0].first != ports[0].last:
        return "a test entry must name exactly one port"
    return None


SSH_TEST_FIELDS = frozenset({"src", "dst", "accept", "check", "deny"})


def build_ssh_test(r: Reader, value: JValue) -> SshTest | None:
    obj = r.obj(value, "sshTest")
    if obj is None:
        return None
    f = r.fields(obj, "sshTest", SSH_TEST_FIELDS, required=("src", "dst"))
    src_text = r.string(f["src"], "sshTest src") if "src" in f else None
    src = (parse_alias(src_text.value, src_text.span, r.diags, position="sshTest src")
           if src_text is not None else None)
    destinations = _ssh_test_destinations(r, f["dst"]) if "dst" in f else ()
    users = {key: r.names(f.get(key), f"sshTest {key}") for key in ("accept", "check", "deny")}
    if not any(has_items(f.get(key)) for key in ("accept", "check", "deny")):
        # Tailscale fails such an entry ("test(s) failed", captured:
        # sshtest-malformed-empty-accept-and-deny) rather than passing it vacuously.
        r.diags.error("E125", obj.span, "sshTest: needs at least one accept, check or deny user")
    if src is None or src_text is None:
        return None
    return SshTest(src, src_text.value.strip(), destinations, users["accept"], users["check"],
                   users["deny"], obj.span)



def _ssh_test_destinations(r: Reader, value: JValue) -> tuple[Alias, ...]:
    """sshTests `dst`: hosts only, in Tailscale's words when one is not.

    Disallowed entries are reported here and dropped, so validation does not
    report them a second time.
    """
    out = []
    for item in r.strings(value, "sshTest dst"):
        text = item.value.strip()
        if text.startswith("tag:") and ":" in text[4:]:
            # Tailscale reads `tag:server:22` as a tag name (captured message).
            r.diags.error("E125", item.span, f'SSH tests dst contains unknown tag "{text}"')
            continue
        alias = parse_alias(item.value, item.span, r.diags, position="sshTest dst")
        if alias is None:
            continue
        if _single_host_problem(alias) is not None:
            r.diags.error("E125", alias.span,
                          f'SSH tests dst contains disallowed element "{alias}"')
            continue
        out.append(alias)
    return tuple(out)
