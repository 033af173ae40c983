"""web/bodies.py under uvicorn: a body is read up to its limit and no further, whether the
visitor declares a length over it or streams it chunked."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from conftest import serve_asgi
from newsletter_mailer.web.bodies import bounded_body

LIMIT = 64


async def echo(request: Request) -> PlainTextResponse:
    body = await bounded_body(request, LIMIT)
    if body is None:
        return PlainTextResponse("too large", status_code=413)
    return PlainTextResponse(f"{len(body)} bytes")


APP = Starlette(routes=[Route("/", echo, methods=["POST"])])


def raw(url: str, request: bytes) -> bytes:
    """Send bytes as they are (httpx would correct a lying Content-Length) and read the reply."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_a_body_within_the_limit_is_read_whole() -> None:
    with serve_asgi(APP) as url:
        assert httpx.post(url, content=b"x" * LIMIT).text == f"{LIMIT} bytes"


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    with serve_asgi(APP) as url:
        head = f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n".encode()
        assert raw(url, head).startswith(b"HTTP/1.1 413")  # answered before any of the 10 MB was sent


def test_a_chunked_stream_is_cut_off_at_the_limit() -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"y" * 16

    with serve_asgi(APP) as url:
        reply = httpx.post(url, content=chunks())
        assert reply.status_code == 413
