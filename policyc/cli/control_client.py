"""The admin side of the control API over httpx, for the CLI (and benchmarks).

Every failure is one `AdminError`: `status` 0 for a network error, else the
HTTP status with the server's stable `code`, its `detail` and, for a
rejected policy, its diagnostics as JSON.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

TOKEN_ENV = "POLICYC_TOKEN"
TIMEOUT_SECONDS = 120.0  # a policy push compiles and tests the whole tailnet


@dataclass
class AdminError(Exception):
    status: int  # 0: no HTTP answer at all
    code: str
    detail: str
    diagnostics: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status else ""
        return f"{where}{self.code}: {self.detail}"


def read_token(token_file: str | None) -> str | None:
    """The admin token from --token-file, else POLICYC_TOKEN; None if neither."""
    if token_file is not None:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip() or None
        except OSError as err:
            raise AdminError(0, "token-file", f"cannot read {token_file}: "
                             f"{err.strerror or err}") from None
    return os.environ.get(TOKEN_ENV, "").strip() or None


class AdminClient:
    def __init__(self, server: str, token: str | None,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=server.rstrip("/"), headers=headers,
                                  timeout=TIMEOUT_SECONDS, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise AdminError(0, "network", f"cannot reach {self._http.base_url}: {err}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            detail = str(body.get("detail", response.reason_phrase))
            if body.get("error") == "not-found":  # FastAPI's unknown route, not ours
                detail += f" ({path} is not a control route: is --server control's base URL?)"
            raise AdminError(response.status_code, str(body.get("error", "http-error")),
                             detail, list(body.get("diagnostics") or []))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self._call(method, path, **kwargs).json()
        if not isinstance(body, dict):
            raise AdminError(0, "bad-answer", f"{path} did not answer a JSON object")
        return body

    def get_policy(self) -> dict[str, Any]:
        return self._json("GET", "/api/v1/policy")

    def put_policy(self, text: str, if_match: str) -> dict[str, Any]:
        return self._json("PUT", "/api/v1/policy", json={"policy": text},
                          headers={"If-Match": f'"{if_match}"' if if_match != "*" else "*"})

    def history(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/policy/history")["versions"])

    def rollback(self, version: int) -> dict[str, Any]:
        return self._json("POST", "/api/v1/policy/rollback", json={"version": version})

    def create_auth_key(self, user: str | None, tags: list[str], reusable: bool,
                        expires_in: int | None) -> dict[str, Any]:
        return self._json("POST", "/api/v1/authkeys", json={
            "user": user, "tags": tags, "reusable": reusable, "expires_in": expires_in})

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/nodes")["nodes"])

    def remove_node(self, name: str) -> dict[str, Any]:
        return self._json("DELETE", f"/api/v1/nodes/{quote(name, safe='')}")

    def approve_routes(self, name: str, routes: list[str]) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/nodes/{quote(name, safe='')}/routes",
                          json={"routes": routes})

    def auth_keys(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/authkeys")["keys"])

    def revoke_auth_key(self, key_id: int) -> dict[str, Any]:
        return self._json("DELETE", f"/api/v1/authkeys/{key_id}")

    def rotate_token(self) -> str:
        return str(self._json("POST", "/api/v1/token/rotate")["token"])

    def audit(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, int] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return list(self._json("GET", "/api/v1/audit", params=params)["entries"])
