"""The HTTP API: FastAPI routes over a `Tailnet`.

Node routes (`/key`, `/machine/register`, `/machine/poll`) take NaCl-boxed
requests and answer boxed; admin routes (`/api/v1/...`) need the admin
token as a bearer token. Every refusal is a ControlError rendered as
`{"error", "detail"}` with a 4xx status, raised before anything is written.
Handlers that write run on worker threads (plain `def`); the long-poll is
`async` so a thousand idle polls cost no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from policyc.control import admin_api
from policyc.control.errors import ControlError
from policyc.control.limits import DEFAULT_MAX_BODY, BodyLimit
from policyc.control.models import ErrorBody, SealedRequestBody, SealedResponseBody, ServerKeysBody
from policyc.control.operations import register
from policyc.control.statedir import token_digest
from policyc.control.tailnet import Held, Tailnet, admin_actor
from policyc.protocol.codec import ProtocolError
from policyc.protocol.messages import (
    KIND_POLL,
    KIND_REGISTER,
    PATH_KEY,
    PATH_POLL,
    PATH_REGISTER,
    POLL_TIMEOUT_SECONDS,
    PollRequest,
    PollResponse,
    RegisterRequest,
    ServerKeys,
)
from policyc.protocol.sealed import (
    BoxCache,
    OpenedRequest,
    ReplayGuard,
    open_request,
    seal_response,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 409, 412, 413, 422, 428)}
EXPIRY_SWEEP_SECONDS = 1.0


@dataclass
class Settings:
    node_expiry: int | None = 180 * 86400  # seconds a node key stays valid
    poll_timeout: float = POLL_TIMEOUT_SECONDS
    max_body: int = DEFAULT_MAX_BODY


def create_app(tailnet: Tailnet, settings: Settings | None = None) -> Any:
    """The ASGI application (FastAPI wrapped in the body-size limit)."""
    config = settings or Settings()
    guard = ReplayGuard()
    boxes = BoxCache(tailnet.keys.box)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tailnet.watchers.attach(asyncio.get_running_loop())
        sweeper = asyncio.create_task(_sweep_expiry(tailnet))
        try:
            yield
        finally:
            sweeper.cancel()

    app = FastAPI(title="policyc control", version="1", lifespan=lifespan,
                  description="Coordination server: policy, registry, signed netmaps.")
    app.state.tailnet = tailnet

    @app.exception_handler(ControlError)
    async def control_error(_: Request, err: ControlError) -> JSONResponse:
        return JSONResponse(err.to_json(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (unparseable body, unknown route, wrong method) in our shape.
        code = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(
            err.status_code, f"http-{err.status_code}")
        return JSONResponse({"error": code, "detail": str(err.detail)},
                            status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": "bad-request",
                             "detail": f"{where}: {first.get('msg', 'invalid request')}"},
                            status_code=400)

    def opened(body: SealedRequestBody, kind: str) -> OpenedRequest:
        try:
            return open_request(boxes, body.model_dump(), kind, guard)
        except ProtocolError as err:
            raise ControlError.from_protocol(err) from None

    @app.get(PATH_KEY, response_model=ServerKeysBody, tags=["node"])
    def server_keys() -> dict[str, Any]:
        """Control's public keys (pin `signing_key` out of band, e.g. from `signing.pub`)."""
        return ServerKeys(tailnet.keys.signing_public, tailnet.keys.box_public).to_json()

    @app.post(PATH_REGISTER, response_model=SealedResponseBody, responses=ERRORS,
              tags=["node"])
    def node_register(body: SealedRequestBody) -> dict[str, str]:
        """Join the tailnet with a pre-auth key; the box proves the node's key."""
        request = opened(body, KIND_REGISTER)
        try:
            message = RegisterRequest.from_json(request.body)
        except ProtocolError as err:
            raise ControlError.from_protocol(err) from None
        answer = register(tailnet, request.node_key, message, config.node_expiry)
        return seal_response(boxes, request, answer.to_json())

    @app.post(PATH_POLL, response_model=SealedResponseBody, responses=ERRORS, tags=["node"])
    async def node_poll(body: SealedRequestBody) -> Response:
        """Long-poll for this node's signed netmap newer than `since` (boxed)."""
        request = opened(body, KIND_POLL)
        try:
            poll = PollRequest.from_json(request.body)
        except ProtocolError as err:
            raise ControlError.from_protocol(err) from None
        answer = await _wait_for_netmap(tailnet, request.node_key, poll, config.poll_timeout)
        # A push answers a thousand polls at once on the event loop: a plain Response
        # skips re-validating the model, and orjson encodes the ~35 KB answer (the
        # stdlib encoder behind JSONResponse showed up in the profile).
        return Response(orjson.dumps(seal_response(boxes, request, answer.to_json())),
                        media_type="application/json")

    @app.get("/healthz", tags=["admin"])
    def healthz() -> dict[str, Any]:
        return {"ok": True, "policy_version": tailnet.view.live.version,
                "nodes": len(tailnet.view.active_by_key),
                "long_polls": tailnet.watchers.polling}

    def admin(request: Request) -> str:
        """The audit log's actor for a request with the admin token; 401 otherwise."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        digest = tailnet.admin_token_digest
        if scheme.lower() != "bearer" or not token or not hmac.compare_digest(
                token_digest(token.strip()), digest):
            raise ControlError(401, "unauthorized", "a valid admin token is required "
                               "(Authorization: Bearer TOKEN)")
        return admin_actor(digest)

    app.include_router(admin_api.router(tailnet, admin, ERRORS))
    return BodyLimit(app, config.max_body)


async def _wait_for_netmap(tailnet: Tailnet, node_key: str, poll: PollRequest,
                           timeout: float) -> PollResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with tailnet.watchers.counted():
        found = await _wait(tailnet, node_key, poll.since, loop, deadline)
    if isinstance(found, PollResponse):  # no change, or a removal notice
        return found
    name, held = found
    if poll.deltas and held.delta is not None and held.base == poll.since:
        return PollResponse(True, None, None, held.delta)
    # A full envelope: encoded and signed now, off the event loop (a dense netmap is
    # most of a megabyte), for a node that has no base for the delta.
    return PollResponse(True, await asyncio.to_thread(tailnet.full_envelope, name, held))


async def _wait(tailnet: Tailnet, node_key: str, since: int,
                loop: asyncio.AbstractEventLoop,
                deadline: float) -> PollResponse | tuple[str, Held]:
    """The node's name and netmap once it is newer than `since`; otherwise the answer
    ("no change" at the deadline or on drain, or a signed removal notice)."""
    while True:
        view = tailnet.view
        name = view.active_by_key.get(node_key)
        if name is None:  # removed, expired or never registered: say so, signed
            return PollResponse(False, None, tailnet.removal_notice(node_key))
        event = tailnet.watchers.event(name)
        current = view.held.get(name)
        if current is not None and current.version > since:
            return name, current
        remaining = deadline - loop.time()
        if tailnet.watchers.draining or remaining <= 0:
            return PollResponse(False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)


async def _sweep_expiry(tailnet: Tailnet) -> None:
    while True:
        await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
        if tailnet.expiry_due():
            await asyncio.to_thread(tailnet.expire_due)
