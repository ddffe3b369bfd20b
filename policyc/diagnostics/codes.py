"""The registry of diagnostic codes: code -> kebab name -> one-line meaning.

Codes are stable: tests, CI annotations and editor integrations key on them,
never on message prose. Add new codes at the end of their block; never
renumber. `docs/diagnostics.md` is generated from this table
(`policyc codes --markdown`).

Blocks: P syntax, E policy errors, W warnings, T policy tests, I inventory,
N enforcement, V verify assertions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CodeInfo:
    name: str
    summary: str


CODES: dict[str, CodeInfo] = {
    # --- P: HuJSON syntax -------------------------------------------------
    "P001": CodeInfo("syntax-error", "The file is not valid HuJSON."),
    "P002": CodeInfo("duplicate-key", "An object has the same key twice."),
    "P003": CodeInfo("invalid-string", "A string has a bad escape or a raw control character."),
    "P004": CodeInfo("invalid-number", "A number is not valid JSON (leading zeros, hex, NaN)."),
    "P005": CodeInfo("unterminated-comment", "A /* comment is never closed."),
    "P006": CodeInfo("io-error", "A file could not be read or is not UTF-8."),
    # --- E: policy errors ----------------------------------------------------
    "E101": CodeInfo("unknown-field", "A section or field is not part of the policy format."),
    "E102": CodeInfo("wrong-type", "A value has the wrong JSON type."),
    "E103": CodeInfo("missing-field", "A required field is absent."),
    "E104": CodeInfo("undefined-group", "A group is used but not defined in `groups`."),
    "E105": CodeInfo("undefined-tag", "A tag is used but not defined in `tagOwners`."),
    "E106": CodeInfo("undefined-host", "A host alias is used but not defined in `hosts`."),
    "E107": CodeInfo("undefined-ipset", "An ipset is used but not defined in `ipsets`."),
    "E108": CodeInfo("nested-group", "A group lists another group; groups cannot nest."),
    "E109": CodeInfo("invalid-user", "A user is not of the form `name@domain` or `name@`."),
    "E110": CodeInfo("invalid-address", "An IP address, CIDR prefix or range is malformed."),
    "E111": CodeInfo("invalid-port", "A port, port list or port range is malformed."),
    "E112": CodeInfo("unknown-protocol", "A protocol name or number is not known."),
    "E113": CodeInfo("unknown-autogroup", "An autogroup name is not known."),
    "E114": CodeInfo("misplaced-autogroup", "An autogroup is used where it is not allowed."),
    "E115": CodeInfo("invalid-action", "A rule action is not one the section accepts."),
    "E116": CodeInfo("invalid-name", "A group, tag, host or ipset name is malformed."),
    "E117": CodeInfo("invalid-alias", "An alias cannot be used in this position."),
    "E118": CodeInfo("ports-not-supported", "Specific ports are used with a portless protocol."),
    "E119": CodeInfo("invalid-grant", "A grant is malformed (no ip/app, bad via)."),
    "E120": CodeInfo("invalid-ssh-rule", "An SSH rule is malformed."),
    "E121": CodeInfo("invalid-self-source", "autogroup:self with a source it cannot narrow."),
    "E122": CodeInfo("circular-tag-owner", "Retired: tag ownership cycles are accepted, as "
                     "Tailscale accepts them (captured); no longer reported."),
    "E123": CodeInfo("invalid-owner", "A tag owner or approver is not a user, group or tag."),
    "E124": CodeInfo("invalid-duration", "A duration is malformed or out of range."),
    "E125": CodeInfo("invalid-test", "A policy test entry is malformed."),
    "E126": CodeInfo("invalid-posture", "A posture or posture reference is malformed."),
    "E127": CodeInfo("invalid-node-attr", "A nodeAttrs entry is malformed."),
    "E128": CodeInfo("invalid-capability", "An app capability name is malformed."),
    "E129": CodeInfo("mixed-spellings", "Retired: autogroup:member and its legacy spelling "
                     "autogroup:members in one file are accepted, as Tailscale accepts "
                     "them; each legacy use is W206."),
    # --- W: likely mistakes ----------------------------------------------------
    "W201": CodeInfo("rule-matches-nothing", "A rule's sources or destinations match no node."),
    "W202": CodeInfo("unused-group", "A group is defined but never referenced."),
    "W203": CodeInfo("shadowed-rule", "Every packet a rule allows is already allowed by another."),
    "W204": CodeInfo("unused-host", "A host alias is defined but never referenced."),
    "W205": CodeInfo("unused-tag", "A tag is defined but no rule or node uses it."),
    "W206": CodeInfo("legacy-syntax", "A legacy spelling Tailscale still accepts "
                     "(autogroup:members, a test's allow, a field name in another case "
                     "such as \"ACLs\")."),
    "W207": CodeInfo("accepted-not-enforced", "Accepted as Tailscale accepts it, but policyc "
                     "does not compile or check it fully."),
    "W208": CodeInfo("empty-node-attr", "A nodeAttrs entry has a target but no attr, app "
                     "or ipPool."),
    "W209": CodeInfo("literal-ssh-user", "An SSH user looks like a pattern but is a literal name."),
    # --- T: policy tests -------------------------------------------------------
    "T301": CodeInfo("test-accept-failed", "A `tests` accept entry is not allowed by the policy."),
    "T302": CodeInfo("test-deny-failed", "A `tests` deny entry is allowed by the policy."),
    "T303": CodeInfo("test-unresolvable", "A test source or destination resolves to nothing."),
    "T304": CodeInfo("ssh-test-failed", "An `sshTests` expectation does not hold."),
    "T305": CodeInfo("test-undecidable", "A test outcome depends on what only the inventory "
                     "(node addresses, users' roles) can tell; reported as a warning."),
    # --- I: inventory ----------------------------------------------------------
    "I401": CodeInfo("invalid-node", "A node entry in the inventory is malformed."),
    "I402": CodeInfo("duplicate-node", "Two nodes share a name, address or key."),
    "I403": CodeInfo("invalid-key", "A WireGuard public key is not 32 bytes of base64."),
    "I404": CodeInfo("unknown-node", "A node named on the command line is not in the inventory."),
    "I405": CodeInfo("missing-addresses",
                     "A node has no `ips` (a device no `addresses`): it cannot be reached."),
    "I406": CodeInfo("ownerless-node", "An untagged node has no user: it belongs to nobody."),
    "I407": CodeInfo("undefined-node-tag",
                     "A node's tag is not in `tagOwners`; the node is compiled without it."),
    "I408": CodeInfo("invalid-node-name",
                     "A node name is not a DNS label or dotted DNS name."),
    "I409": CodeInfo("invalid-endpoint", "An endpoint is not `IPv4:port` or `[IPv6]:port`."),
    "I410": CodeInfo("exit-route-in-routes",
                     "`routes` holds 0.0.0.0/0 or ::/0; `exit_node: true` says that."),
    "I411": CodeInfo("address-outside-tailnet",
                     "A node address is outside 100.64.0.0/10 and fd7a:115c:a1e0::/48."),
    "I412": CodeInfo("unsafe-output-path",
                     "A node's output file would not be a direct child of the -o folder."),
    "I413": CodeInfo("route-host-bits", "A route has host bits set; the masked prefix is used."),
    "I414": CodeInfo("approved-routes-ignored",
                     "`approved_routes` is not read and disagrees with `routes`/`exit_node`."),
    # --- N: enforcement ----------------------------------------------------------
    "N501": CodeInfo("nft-load-failed", "nftables rejected the ruleset; the old one is kept."),
    "N502": CodeInfo("nft-drift", "The loaded table differs from what policyc rendered."),
    "N503": CodeInfo("interface-missing", "The mesh interface does not exist."),
    "N504": CodeInfo("privilege-missing", "Needs root or CAP_NET_ADMIN."),
    "N505": CodeInfo("wireguard-failed", "Configuring WireGuard peers failed."),
    "N506": CodeInfo("unsupported-by-backend", "A rule uses something the backend cannot express."),
    "N507": CodeInfo("invalid-netmap", "A filter rule has a malformed address, port or protocol."),
    "N508": CodeInfo("netns-missing", "The network namespace to enforce in does not exist."),
    "N509": CodeInfo("revocation-failed", "Conntrack entries of revoked flows could not be cut."),
    # --- V: universal assertions (`policyc verify`) ------------------------------
    "V601": CodeInfo("invalid-assertion", "An assertions file entry is malformed."),
    "V602": CodeInfo("deny-violated",
                     "A `deny` assertion does not hold: some packet it covers is allowed."),
    "V603": CodeInfo("allow-violated",
                     "An `allow` assertion does not hold: some packet it covers is denied."),
    "V604": CodeInfo("isolation-violated",
                     "An `isolated` target reaches, or is reached from, outside itself."),
    "V605": CodeInfo("assertion-vacuous",
                     "An assertion's source or destination names no address: it proves nothing."),
}
