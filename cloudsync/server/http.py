"""Reading requests and writing answers the CouchDB way: JSON bodies within the size and
depth limits, JSON answers, the allowed methods."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import IO, Any

from aiohttp import web

from .._json import dumps
from .errors import CouchError, bad_request
from .limits import parse_json
from .state import ServerConfig
from .storage.attachments import digest_of

__all__ = ["JSON", "allow", "json_response", "raw_json_response", "read_body", "read_json", "rev_header",
           "spool_body", "too_large"]

JSON = "application/json"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type=JSON, headers=headers)


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def too_large() -> CouchError:
    return CouchError(413, "too_large", "the request entity is too large")


async def _body_chunks(request: web.Request, cap: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, at most `cap` bytes (413 beyond, without reading
    the rest); 408 when the client sends nothing for `idle_timeout` seconds in the middle of it."""
    if request.content_length is not None and request.content_length > cap:
        raise too_large()
    timeout = request.app["state"].config.idle_timeout or None
    size = 0
    content = request.content
    while True:
        chunk = content.read_nowait()  # what already arrived: no timer needed
        if not chunk:
            if content.at_eof():
                return
            try:
                chunk = await asyncio.wait_for(content.readany(), timeout)
            except asyncio.TimeoutError:
                raise CouchError(408, "request_timeout", "the request body stopped arriving") from None
            if not chunk:
                return
        size += len(chunk)
        if size > cap:
            raise too_large()
        yield chunk


async def read_body(request: web.Request, cap: int) -> bytes:
    """The request body, at most `cap` bytes (see `_body_chunks`)."""
    return b"".join([chunk async for chunk in _body_chunks(request, cap)])


async def spool_body(request: web.Request, file: IO[bytes], cap: int) -> tuple[str, int]:
    """Write the request body (at most `cap` bytes, see `_body_chunks`) to `file`, so
    a large upload is never held in memory; returns its CouchDB digest and length."""
    md5 = hashlib.md5()
    size = 0
    async for chunk in _body_chunks(request, cap):
        md5.update(chunk)
        file.write(chunk)
        size += len(chunk)
    file.flush()
    return digest_of(md5), size


async def read_json(request: web.Request, *, require_object: bool = True, strict_type: bool = True,
                    empty: Any = None, cap: int | None = None) -> Any:
    """The request body as JSON, enforcing CouchDB's content type, the size and depth limits."""
    config: ServerConfig = request.app["state"].config
    if strict_type and request.method == "POST" and request.content_type != JSON:
        raise CouchError(415, "bad_content_type", "Content-Type must be application/json")
    data = await read_body(request, config.max_body if cap is None else cap)
    if not data.strip():
        if empty is not None:
            return empty
        raise bad_request("Request body is empty; expected a JSON object")
    value = parse_json(data, config.max_json_depth)
    if require_object and not isinstance(value, dict):
        raise bad_request("Request body must be a JSON object")
    return value


def allow(method: str, *allowed: str) -> None:
    """405 `method_not_allowed` unless `method` is one of `allowed`."""
    if method not in allowed:
        raise CouchError(405, "method_not_allowed", f"Only {','.join(allowed)} allowed")


def rev_header(request: web.Request) -> str | None:
    etag = request.headers.get("If-Match")
    return etag.strip('"') if etag else None
