"""Run a callable inside a named network namespace (`ip netns add NAME`).

Why a fresh thread with setns(2), and not `ip netns exec ... nft -f -`:
the nftables binding opens its netlink socket in the namespace of the
*calling thread*, and a network namespace is a per-thread attribute. So a
short-lived thread that calls setns(CLONE_NEWNET) and then runs the
callable gets the binding (and any subprocess it forks, such as
`conntrack`) in the target namespace, while the rest of the process stays
where it was. The thread exits afterwards, so no thread is ever left in a
foreign namespace and nothing has to be restored. No fork of a
multi-threaded interpreter, no text round-trip through a CLI, and errors
come back as Python values. (os.setns only exists from Python 3.12, hence
ctypes.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

NETNS_DIR = "/var/run/netns"
_CLONE_NEWNET = 0x40000000


class NetnsError(Exception):
    """The namespace does not exist or could not be entered."""


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def netns_exists(name: str) -> bool:
    return "/" not in name and os.path.exists(netns_path(name))


def _setns(path: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetnsError(f"setns({path}) failed: {os.strerror(errno)}")
    finally:
        os.close(fd)


def run_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """`fn()` evaluated inside network namespace `netns` (None: right here).

    Exceptions raised by `fn` are re-raised in the caller; a missing or
    unenterable namespace raises NetnsError.
    """
    if netns is None:
        return fn()
    if not netns_exists(netns):
        raise NetnsError(f"network namespace {netns!r} does not exist")
    box: dict[str, T] = {}
    failure: list[BaseException] = []

    def body() -> None:
        try:
            _setns(netns_path(netns))
            box["value"] = fn()
        except BaseException as err:  # handed back to the caller's thread
            failure.append(err)

    worker = threading.Thread(target=body, name=f"netns-{netns}", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return box["value"]


def interface_exists(iface: str, netns: str | None) -> bool:
    """Whether `iface` exists in `netns`.

    if_nametoindex uses a socket of the calling thread's namespace, which is
    right; /sys/class/net would show the namespace sysfs was mounted in.
    """
    def probe() -> bool:
        try:
            socket.if_nametoindex(iface)
        except OSError:
            return False
        return True

    return run_in_netns(netns, probe)
