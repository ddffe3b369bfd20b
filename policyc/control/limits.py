"""Size limits: the policy text, and an ASGI middleware that refuses request
bodies over a size limit with 413.

The policy limit is in UTF-8 bytes of the text. `PUT /api/v1/policy` may carry
a body of twice that (plus room for the envelope): JSON doubles at most a
quote, backslash, tab or newline, and leaves other text as it is (httpx and
orjson do not escape non-ASCII), so any policy under the limit fits its
body. `policy_too_large` is what `control init` and the PUT both apply, so a
policy `init` accepted can always be pushed again.

The middleware checks Content-Length up front, then reads the body itself
(never keeping more than the limit) before the application sees it, so a client
that lies about or omits the length still cannot make the server buffer more,
and the framework never turns the overflow into some other error.

A refused body is read to its end and dropped before the 413 is sent (up to
twice the limit in all, for at most DRAIN_SECONDS). The answer closes the
connection, and closing a socket that still holds unread data sends a TCP reset,
which can destroy the 413 on its way to a client that is still sending (httpx
reads the answer only after its whole body is out): it saw "peer closed
connection without sending complete message body". A client that says
`Expect: 100-continue` is answered at once (it sends nothing before the 100);
one that declares more than twice the limit is answered at once too, and may
see a reset instead of the 413.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024
MAX_POLICY_BYTES = 32 * MIB  # the 10k-node dense benchmark's policy is 12.9 MiB
MAX_POLICY_BODY = 2 * MAX_POLICY_BYTES + 64 * 1024
DEFAULT_MAX_BODY = 8 * MIB  # every other route (a node's sealed request is under 100 KB)
POLICY_ROUTE = ("PUT", "/api/v1/policy")
DRAIN_SECONDS = 10.0  # how long a refused body is read and dropped, at most


def policy_too_large(text: str) -> str | None:
    """Why `text` is over the policy limit, or None when it is not."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_POLICY_BYTES:
        return (f"the policy is {size} bytes of UTF-8 text; the limit is "
                f"{MAX_POLICY_BYTES} bytes ({MAX_POLICY_BYTES // MIB} MiB)")
    if 6 * size + 16 <= MAX_POLICY_BODY:  # even six bytes per byte would fit
        return None
    body = len(json.dumps({"policy": text}, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if body > MAX_POLICY_BODY:  # only control characters escape to more than 2 bytes
        return (f"the policy's JSON encoding is {body} bytes (control characters escape "
                f"to 6 bytes each); PUT /api/v1/policy takes at most {MAX_POLICY_BODY}")
    return None


class BodyLimit:
    """`max_body` for every route but `PUT /api/v1/policy`, which takes `policy_body`."""

    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY,
                 policy_body: int = MAX_POLICY_BODY) -> None:
        self.app = app
        self.max_body = max_body
        self.policy_body = policy_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (self.policy_body if (scope["method"], scope["path"]) == POLICY_ROUTE
                 else self.max_body)
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            if (declared.isdigit() and int(declared) <= 2 * limit
                    and headers.get(b"expect", b"").lower() != b"100-continue"):
                await _discard(receive, 2 * limit)
            await _too_large(send, scope, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > limit:
                chunks.clear()
                if more:
                    await _discard(receive, 2 * limit - size)
                await _too_large(send, scope, limit)
                return
            chunks.append(chunk)
            if not more:
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # e.g. http.disconnect, which long-polls wait on

        await self.app(scope, replay, send)


async def _discard(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a refused body: until its end, `budget` bytes
    or DRAIN_SECONDS, whichever comes first (see the module's docstring)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while budget >= 0:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                budget -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


async def _too_large(send: Send, scope: Scope, limit: int) -> None:
    detail = f"request body over {limit} bytes, the limit for {scope['method']} {scope['path']}"
    if (scope["method"], scope["path"]) == POLICY_ROUTE:
        detail += f" (a policy may be up to {MAX_POLICY_BYTES} bytes of UTF-8 text)"
    data = json.dumps({"error": "too-large", "detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})
