"""Load the official `nftables` Python binding (Debian's python3-nftables).

The binding is a thin ctypes wrapper over libnftables. Debian installs it for
the system interpreter only (/usr/lib/python3/dist-packages), so a virtualenv
or pyenv interpreter does not see it. We try a normal import first and only
then append that directory to the END of sys.path, so nothing the system
directory holds can shadow packages of the running environment.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import NO_SPAN

SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
_CAP_NET_ADMIN = 12  # bit number in the CapEff mask of /proc/self/status


class BindingMissing(Exception):
    """The nftables binding or libnftables could not be loaded."""


def import_nftables() -> ModuleType:
    """The `nftables` module; raises BindingMissing if it is not installed."""
    try:
        return importlib.import_module("nftables")
    except ImportError:
        pass
    if SYSTEM_DIST_PACKAGES not in sys.path:
        sys.path.append(SYSTEM_DIST_PACKAGES)
    try:
        return importlib.import_module("nftables")
    except ImportError as err:
        raise BindingMissing(
            "the nftables Python binding is not installed "
            "(apt-get install python3-nftables)") from err


def new_context(*, numeric_proto: bool = True) -> Any:
    """A fresh `nftables.Nftables()` with JSON output.

    Numeric protocols make read-back comparable with what we render.
    Call it inside the target network namespace: libnftables opens its
    netlink socket in the namespace of the calling thread.
    """
    module = import_nftables()
    try:
        ctx = module.Nftables()
    except OSError as err:  # libnftables.so.1 itself is missing
        raise BindingMissing(f"libnftables could not be loaded: {err}") from err
    ctx.set_json_output(True)
    ctx.set_numeric_proto_output(numeric_proto)
    ctx.set_handle_output(False)
    return ctx


def has_net_admin() -> bool:
    """True when this process holds CAP_NET_ADMIN in its effective set.

    Being uid 0 is not enough: a root shell in a container or under
    `setpriv --bounding-set=-net_admin` lacks the capability.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_ADMIN & 1)
    except OSError:
        return False
    return False


def check_enforcer_ready(diagnostics: Diagnostics) -> bool:
    """Report N504 when the binding or the privilege is missing."""
    try:
        import_nftables()
    except BindingMissing as err:
        diagnostics.error("N504", NO_SPAN, str(err))
        return False
    if not has_net_admin():
        diagnostics.error("N504", NO_SPAN,
                          "loading nftables rules needs root or CAP_NET_ADMIN")
        return False
    return True
