"""The state directory: the database, control's two private keys, the admin token.

`DIR` is 0700 and every secret in it 0600, created with O_EXCL so an
existing file is never overwritten and never briefly world-readable.
The public halves are written beside them (`signing.pub`, `box.pub`) for
nodes to pin; the admin token is stored hashed in the database too, so the
server never needs the token file to check a request.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from policyc.protocol.codec import b64decode, b64encode

DATABASE = "control.db"
SIGNING_KEY = "signing.key"
BOX_KEY = "box.key"
ADMIN_TOKEN = "admin.token"
SIGNING_PUB = "signing.pub"
BOX_PUB = "box.pub"
STATE_FILES = (DATABASE, SIGNING_KEY, BOX_KEY, ADMIN_TOKEN)
ADMIN_TOKEN_SETTING = "admin_token_sha256"


class StateError(Exception):
    """The state directory is missing, incomplete, or already exists."""


@dataclass(frozen=True)
class ControlKeys:
    signing: SigningKey  # Ed25519: signs netmap envelopes
    box: PrivateKey  # X25519: node requests are boxed to its public half

    @property
    def signing_public(self) -> str:
        return b64encode(bytes(self.signing.verify_key))

    @property
    def box_public(self) -> str:
        return b64encode(bytes(self.box.public_key))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def write_secret(path: Path, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def replace_secret(path: Path, text: str) -> None:
    """Write `text` over the secret at `path` atomically (0600 from the first byte)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    write_secret(temporary, text)
    try:
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def new_admin_token() -> str:
    return "pct-" + secrets.token_urlsafe(32)


def prepare_new_state(state: Path) -> None:
    """Create `state` (0700), refusing one that already holds control state."""
    if state.exists() and not state.is_dir():
        raise StateError(f"{state} exists and is not a directory")
    if state.is_dir() and any(state.iterdir()):
        raise StateError(f"{state} is not empty: refusing to overwrite existing control state")
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state, 0o700)


def create_keys(state: Path) -> tuple[ControlKeys, str]:
    """New control keys and admin token, written into `state`; returns both."""
    keys = ControlKeys(SigningKey.generate(), PrivateKey.generate())
    token = new_admin_token()
    write_secret(state / SIGNING_KEY, b64encode(bytes(keys.signing)) + "\n")
    write_secret(state / BOX_KEY, b64encode(bytes(keys.box)) + "\n")
    write_secret(state / ADMIN_TOKEN, token + "\n")
    write_secret(state / SIGNING_PUB, keys.signing_public + "\n", 0o644)
    write_secret(state / BOX_PUB, keys.box_public + "\n", 0o644)
    return keys, token


def load_keys(state: Path) -> ControlKeys:
    missing = [name for name in STATE_FILES if not (state / name).is_file()]
    if missing:
        raise StateError(f"{state} is not a control state directory (missing {missing[0]}); "
                         "run `policyc control init` first")
    try:
        signing = b64decode((state / SIGNING_KEY).read_text().strip(), SIGNING_KEY, 32)
        box = b64decode((state / BOX_KEY).read_text().strip(), BOX_KEY, 32)
    except (OSError, ValueError) as err:
        raise StateError(f"cannot read control keys in {state}: {err}") from None
    return ControlKeys(SigningKey(signing), PrivateKey(box))
