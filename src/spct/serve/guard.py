"""What every spct server checks before a route runs, and how it refuses.

The reward server (`app.py`) and the OpenAI-compatible chat server (`chat_api.py`) share it, so
both refuse the same way: a Host header outside `allowed_hosts` is 400 (DNS rebinding), a
missing or wrong API key 401 (`/health` excepted), a body past the limit 413 (by
Content-Length, or counted as a chunked body streams in), and every refusal or invalid body
is answered `{"error": why}` with the field named.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1"]

# Told of every answered request: path, status, and the seconds it took (None for one refused here).
Observe = Callable[[str, int, float | None], None]


def refusal(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _where(loc: tuple) -> str:
    parts = [str(x) for x in loc if x != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def host_allowed(header: str, allowed: list[str]) -> bool:
    """Does a Host header (`name`, `name:port`, `[v6]` or `[v6]:port`) name one of `allowed`?"""
    if header.startswith("["):
        host, _, rest = header[1:].partition("]")
        if rest and not rest.startswith(":"):
            return False
        port = rest[1:] if rest else None
    else:
        host, colon, port = header.partition(":")
        port = port if colon else None
    if port is not None and not (port.isascii() and port.isdigit()):
        return False
    return bool(host) and host.lower().rstrip(".") in {h.lower().strip("[]") for h in allowed}


def given_key(raw_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The API key a request carries (X-API-Key, or Authorization with the Bearer scheme), as sent.

    Compared as bytes with the key's UTF-8: header values arrive as bytes, and decoding them as
    latin-1 (as Starlette does) would never match a non-ASCII key. The scheme is case-insensitive
    (RFC 7235), so `bearer KEY` is accepted too.
    """
    headers = dict(raw_headers)
    if headers.get(b"x-api-key"):
        return headers[b"x-api-key"].strip()
    auth = headers.get(b"authorization", b"").strip()
    scheme, sep, token = auth.partition(b" ")
    return token.strip() if sep and scheme.lower() == b"bearer" else auth


def key_bytes(api_key: str) -> bytes:
    """The key as bytes on the wire: its UTF-8, or, for a key read from a command line or the
    environment that is not UTF-8 (Python keeps such bytes as surrogate escapes), the bytes typed."""
    return api_key.encode("utf-8", "surrogateescape")


def authorized(request: Request, api_key: str | None) -> bool:
    """Does the request carry `api_key` (always, when the server has none)?"""
    return not api_key or hmac.compare_digest(given_key(request.headers.raw), key_bytes(api_key))


class BodyLimit:
    """Pure ASGI middleware: reads the request body as it streams in and answers 413 once it passes the limit.

    A chunked body carries no Content-Length to check up front; counting it here means neither
    kind is ever held in memory beyond the limit. The body read is replayed to the app.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await refusal(413, f"request body exceeds the limit of {self.max_bytes} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def install_guard(app: FastAPI, api_key: str | None, allowed_hosts: list[str] | None, max_body_bytes: int,
                  observe: Observe | None = None) -> None:
    """Put the checks above in front of every route of `app`, and answer its errors as `{"error": why}`."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # inside `guard`: its 413s are observed

    def seen(path: str, status: int, seconds: float | None = None) -> None:
        if observe is not None:
            observe(path, status, seconds)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        t0 = time.perf_counter()
        path = request.url.path
        if allowed_hosts is not None and not host_allowed(request.headers.get("host", ""), allowed_hosts):
            seen(path, 400)
            return refusal(400, f"Host header {request.headers.get('host', '')!r} is not one this server answers to "
                                f"({', '.join(allowed_hosts)}, any port)")
        if path != "/health" and not authorized(request, api_key):
            seen(path, 401)
            return refusal(401, "missing or wrong API key (send 'Authorization: Bearer KEY' or 'X-API-Key: KEY')")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            seen(path, 413)
            return refusal(413, f"request body of {length} bytes exceeds the limit of {max_body_bytes} bytes")
        response = await call_next(request)
        seen(path, response.status_code, time.perf_counter() - t0)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            e = errors[0]
            return refusal(400, f"body is not valid JSON ({e.get('ctx', {}).get('error', 'decode error')} at position {e['loc'][-1]})")
        problems = [f"{_where(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in errors]
        return refusal(422, "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return refusal(exc.status_code, str(exc.detail))
