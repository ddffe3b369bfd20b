"""The WireGuard interface: use the one that exists, else create it and own it.

Creation tries the kernel module first (`ip link add IF type wireguard`) and
falls back to wireguard-go. wireguard-go is started in its own session so it
outlives the agent: SIGTERM to the agent leaves the mesh up, and an agent
restarted later finds the interface and takes it over. What was created is
recorded in `interface.json` so `policyc node down` removes exactly that:
the kernel link by name, wireguard-go by the PID recorded, after checking that
the PID still runs wireguard-go for this interface (a reused PID is left alone).

wireguard-go's control socket is /var/run/wireguard/IF.sock. That directory is
not per network namespace, so two namespaces cannot both have an IF of the same
name: a live socket for a name this namespace does not have is refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyc.enforcer.netns import interface_exists, netns_exists
from policyc.meshnode.state import StateDir

WG_SOCKET_DIR = Path("/var/run/wireguard")
SOCKET_WAIT_SECONDS = 5.0
_IFNAME = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_USERSPACE_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}


class InterfaceError(Exception):
    """The interface cannot be found or created."""


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    netns: str | None
    kind: str  # "existing", "kernel" or "wireguard-go"
    pid: int | None = None  # wireguard-go's, when this agent started it

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "netns": self.netns, "kind": self.kind, "pid": self.pid}


def valid_interface_name(name: str) -> bool:
    return bool(_IFNAME.match(name)) and name not in {".", ".."}


def valid_netns_name(name: str) -> bool:
    return bool(_NETNS.match(name)) and name not in {".", ".."}


def ip_command(netns: str | None, *args: str) -> list[str]:
    return ["ip", *(["-n", netns] if netns else []), *args]


def ensure_interface(state: StateDir, name: str, netns: str | None) -> Interface:
    """The interface `name` in `netns`, created if missing (and recorded in DIR)."""
    if not valid_interface_name(name):
        raise InterfaceError(f"{name!r} is not a valid interface name (1-15 characters: "
                             "letters, digits and _=+.-)")
    if netns is not None and (not valid_netns_name(netns) or not netns_exists(netns)):
        raise InterfaceError(f"network namespace {netns!r} does not exist")
    recorded = _recorded(state)
    if recorded is not None and recorded.kind != "existing" and recorded.name != name \
            and interface_exists(recorded.name, recorded.netns):
        # Recording the new one would forget the old: its wireguard-go would be left
        # running with nobody to stop it.
        raise InterfaceError(f"this state directory's agent created {recorded.name!r}; use "
                             f"--iface {recorded.name} or run `policyc node down` first")
    if interface_exists(name, netns):
        if recorded is not None and recorded.name == name and recorded.netns == netns:
            return recorded  # ours, from an earlier run of the agent
        if not is_wireguard(name, netns):
            raise InterfaceError(f"{name!r} exists and is not a WireGuard interface; "
                                 "choose another --iface name")
        existing = Interface(name, netns, "existing")
        state.write_json(state.interface, existing.to_json())  # so `node down` finds it
        return existing
    created = _create_kernel(name, netns) or _create_userspace(name, netns)
    state.write_json(state.interface, created.to_json())
    return created


def is_wireguard(name: str, netns: str | None) -> bool:
    """`wg` knows it (a kernel WireGuard link, or one wireguard-go serves)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    try:
        proc = subprocess.run([*prefix, "wg", "show", name, "public-key"], capture_output=True,
                              text=True, check=False, timeout=10)
    except FileNotFoundError:
        return True  # no `wg` at all: the first apply reports that, with its own code
    return proc.returncode == 0


def _create_kernel(name: str, netns: str | None) -> Interface | None:
    proc = subprocess.run(ip_command(netns, "link", "add", name, "type", "wireguard"),
                          capture_output=True, text=True, check=False, timeout=10)
    return Interface(name, netns, "kernel") if proc.returncode == 0 else None


def _create_userspace(name: str, netns: str | None) -> Interface:
    sock = WG_SOCKET_DIR / f"{name}.sock"
    if _socket_live(sock):
        raise InterfaceError(f"{sock} is in use by an interface {name!r} in another network "
                             "namespace; choose another --iface name")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    try:
        # `ip netns exec` execs wireguard-go in place, so this PID is wireguard-go's.
        proc = subprocess.Popen([*prefix, "wireguard-go", "-f", name],
                                env={**os.environ, **_USERSPACE_ENV}, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except FileNotFoundError as err:
        raise InterfaceError("no WireGuard kernel module and wireguard-go is not "
                             "installed") from err
    deadline = time.monotonic() + SOCKET_WAIT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InterfaceError(f"wireguard-go for {name!r} exited with {proc.returncode}")
        if _socket_live(sock) and interface_exists(name, netns):
            return Interface(name, netns, "wireguard-go", proc.pid)
        time.sleep(0.02)
    _kill_pid(proc.pid)
    raise InterfaceError(f"wireguard-go did not create {sock} within {SOCKET_WAIT_SECONDS} s")


def _socket_live(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _recorded(state: StateDir) -> Interface | None:
    data = state.read_json(state.interface)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    pid = data.get("pid")
    return Interface(data["name"], data.get("netns"), str(data.get("kind")),
                     pid if isinstance(pid, int) else None)


def recorded_interface(state: StateDir) -> Interface | None:
    """The interface the agent used last (and whether it created it), if any."""
    return _recorded(state)


def remove_interface(state: StateDir) -> Interface | None:
    """Remove the interface this agent created (if any) and forget the record."""
    recorded = _recorded(state)
    if recorded is None:
        return None
    if recorded.kind == "kernel":
        subprocess.run(ip_command(recorded.netns, "link", "del", recorded.name),
                       capture_output=True, check=False, timeout=10)
    elif recorded.kind == "wireguard-go" and recorded.pid is not None \
            and _runs_wireguard_go(recorded.pid, recorded.name):
        _kill_pid(recorded.pid)
    state.remove(state.interface)
    return recorded


def _runs_wireguard_go(pid: int, name: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(a.endswith(b"wireguard-go") for a in argv) and name.encode() in argv


def _kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            _reap(pid)
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
