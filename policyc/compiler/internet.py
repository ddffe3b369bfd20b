"""Well-known address sets: Tailscale's own ranges and "the Internet".

The Internet set is what `autogroup:internet` means: every unicast address
outside private, Tailscale, and link-local space (the same construction
Tailscale's control plane uses: 0.0.0.0/0 and 2000::/3 minus RFC 1918,
fc00::/7, 100.64.0.0/10, fd7a:115c:a1e0::/48, 169.254.0.0/16, fe80::/10).
"""

from __future__ import annotations

import ipaddress

from policyc.compiler.addrset import AddressSet


def _nets(*texts: str) -> AddressSet:
    return AddressSet.of_networks(ipaddress.ip_network(t) for t in texts)


CGNAT = _nets("100.64.0.0/10")
CHROMEOS_VM = _nets("100.115.92.0/23")
TAILSCALE_ULA = _nets("fd7a:115c:a1e0::/48")

# What `*` means as a source before subnet routes are added.
TAILSCALE_RANGES = (CGNAT - CHROMEOS_VM) | TAILSCALE_ULA

INTERNET = _nets("0.0.0.0/0", "2000::/3") - _nets(
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    "100.64.0.0/10", "fd7a:115c:a1e0::/48", "169.254.0.0/16", "fe80::/10",
)
