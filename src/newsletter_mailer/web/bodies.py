"""A request body read no further than a limit. Every POST here is small (a one-click
unsubscribe, a form, a provider's batch of events), so a body past its limit is refused: a
declared Content-Length over it unread, and a stream that runs past it (chunked, or lying
about its length) cut off at the limit, so no visitor can make the server hold more."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["bounded_body"]


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it would pass ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
