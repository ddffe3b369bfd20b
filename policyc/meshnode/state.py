"""The agent's state directory: one folder, root only, every file written atomically.

Layout (all under DIR, which is 0700; every file 0600):

    node.key        the node's X25519 private key, WireGuard base64; made here, never sent
    control.json    control's public keys, pinned at the first join (or with --control-key)
    identity.json   what control said at registration: node name, addresses, server URL
    netmap.json     the last verified signed netmap envelope, exactly as received
    interface.json  the interface this agent created and how (kernel link or wireguard-go PID)
    agent.sock      the local status/whois socket while an agent runs

An atomic write goes to a temporary file in DIR, is fsynced and renamed over the
target, then the directory is fsynced: a crash leaves either the old or the new
file, never a torn one. The cache must survive a power cut because it is what the
node enforces when it restarts while control is away.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIR_MODE = 0o700
FILE_MODE = 0o600
DEFAULT_STATE_DIR = "/var/lib/policyc-node"


class StateError(Exception):
    """The state directory cannot be used (wrong owner or mode, unreadable file)."""


@dataclass(frozen=True, slots=True)
class StateDir:
    root: Path

    @property
    def node_key(self) -> Path:
        return self.root / "node.key"

    @property
    def control_keys(self) -> Path:
        return self.root / "control.json"

    @property
    def identity(self) -> Path:
        return self.root / "identity.json"

    @property
    def netmap(self) -> Path:
        return self.root / "netmap.json"

    @property
    def interface(self) -> Path:
        return self.root / "interface.json"

    @property
    def socket(self) -> Path:
        return self.root / "agent.sock"

    def ensure(self) -> StateDir:
        """Create DIR (0700) if needed; refuse one that others can read or write."""
        try:
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            info = self.root.stat()
        except OSError as err:
            raise StateError(f"cannot create state directory {self.root}: "
                             f"{err.strerror or err}") from err
        if info.st_uid != os.geteuid():
            raise StateError(f"state directory {self.root} belongs to uid {info.st_uid}, "
                             f"not to this user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            # Tightening is safe (only this user loses nothing); loosening never happens.
            os.chmod(self.root, DIR_MODE)
        return self

    def write_bytes(self, path: Path, data: bytes) -> None:
        atomic_write(path, data)

    def write_json(self, path: Path, value: Any) -> None:
        atomic_write(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

    def read_json(self, path: Path) -> Any | None:
        """The file's JSON, or None when it does not exist."""
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StateError(f"cannot read {path}: {err.strerror or err}") from err
        try:
            return json.loads(text)
        except ValueError as err:
            raise StateError(f"{path} is not valid JSON: {err}") from err

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
