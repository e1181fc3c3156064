"""Bearer-token authentication and request-body limits, as plain ASGI middleware.

Both wrap the whole app, so they cover every route, the static dashboard, the
OpenAPI docs and the WebSocket alike, before FastAPI parses anything.

- Token: when the server has a token, every HTTP request and WebSocket
  handshake must carry it, either as ``Authorization: Bearer <token>`` or as a
  ``token`` query parameter (browsers cannot set headers on a WebSocket, and the
  dashboard page is opened by URL). Comparison is constant-time. A missing or
  wrong token gets 401 (HTTP) or a close with code 4401 before accept (WS).
- Body size: a request whose body is larger than the route's limit gets 413,
  whether it announces its length or streams chunks; nothing is parsed or
  applied.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Awaitable, Callable
from urllib.parse import parse_qs

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

JSON_BODY_LIMIT_BYTES = 1 << 20          # scenario, UE, policy... bodies
UPLOAD_BODY_LIMIT_BYTES = 64 << 20       # model bundles and traces


def is_loopback_host(host: str) -> bool:
    """True when ``host`` only listens on the loopback interface."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _token_from_scope(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            scheme, _, cred = text.partition(" ")
            if scheme.lower() == "bearer" and cred:
                return cred.strip()
            return None
    qs = scope.get("query_string", b"").decode("latin-1")
    if "token=" in qs:
        values = parse_qs(qs).get("token")
        if values:
            return values[0]
    return None


async def _send_json(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())] + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


class TokenAuthMiddleware:
    """Reject every request without the server's bearer token (no-op when token is None)."""

    def __init__(self, app, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = _token_from_scope(scope)
        if given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self.token):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()   # the websocket.connect message
            await send({"type": "websocket.close", "code": 4401, "reason": "missing or wrong token"})
            return
        await _send_json(send, 401, {"detail": [{"loc": ["header", "authorization"],
                                                 "msg": "missing or wrong bearer token",
                                                 "type": "unauthorized"}]},
                         headers=[(b"www-authenticate", b'Bearer realm="neuralemu"')])


class BodyLimitMiddleware:
    """413 for bodies over the limit; uploads (``/models``, ``/traces``) get a larger one."""

    def __init__(self, app, json_limit_bytes: int = JSON_BODY_LIMIT_BYTES,
                 upload_limit_bytes: int = UPLOAD_BODY_LIMIT_BYTES,
                 upload_prefixes: tuple[str, ...] = ("/models", "/traces")) -> None:
        self.app = app
        self.json_limit_bytes = json_limit_bytes
        self.upload_limit_bytes = upload_limit_bytes
        self.upload_prefixes = upload_prefixes

    def limit_for(self, path: str) -> int:
        if path.startswith(self.upload_prefixes):
            return self.upload_limit_bytes
        return self.json_limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    return await _send_json(send, 400, {"detail": [{
                        "loc": ["header", "content-length"], "msg": "not an integer",
                        "type": "bad_request"}]})
                if announced > limit:
                    return await self._too_large(send, limit)
        # Read the whole body first (bounded by the limit), then replay it: the
        # app never sees a partial body, and an oversized one is refused before
        # any handler runs.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                return await self._too_large(send, limit)
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay_receive() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay_receive, send)

    @staticmethod
    async def _too_large(send: Send, limit: int) -> None:
        await _send_json(send, 413, {"detail": [{"loc": ["body"],
                                                 "msg": f"request body larger than {limit} bytes",
                                                 "type": "too_large"}]})
