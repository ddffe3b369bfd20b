"""The one error type the API turns into a 4xx answer.

`code` is stable and machine-matched (clients and tests use it); `detail`
is for people; `diagnostics` carries policy diagnostics (422).
"""

from __future__ import annotations

from typing import Any

from policyc.protocol.codec import ProtocolError

# ProtocolError codes -> HTTP status: malformed is 400, unauthenticated is 401.
PROTOCOL_STATUS = {"bad-box": 401, "stale": 401, "replay": 401, "too-large": 413}


class ControlError(Exception):
    def __init__(self, status: int, code: str, detail: str,
                 diagnostics: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.diagnostics = diagnostics

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.diagnostics is not None:
            out["diagnostics"] = self.diagnostics
        return out

    @classmethod
    def from_protocol(cls, err: ProtocolError) -> ControlError:
        return cls(PROTOCOL_STATUS.get(err.code, 400), err.code, err.message)
