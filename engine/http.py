"""The admin HTTP endpoint: ``/health`` (ready once every listener is bound) and ``/metrics``.

A deliberately tiny HTTP/1.1 server on asyncio streams: two GET routes do not justify a
web framework on the engine's critical dependencies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from engine.logging import get_logger

log = get_logger("radbridge.http")

Handler = Callable[[], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
            422: "Unprocessable Content", 503: "Service Unavailable"}


class AdminServer:
    def __init__(self, host: str, port: int, routes: dict[str, Handler],
                 post_routes: dict[str, Handler] | None = None) -> None:
        self.host = host
        self.port = port
        self.routes = routes
        self.post_routes = post_routes or {}
        self.bound_port: int | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.bound_port = self._server.sockets[0].getsockname()[1]
        log.info("admin_http_started", host=self.host, port=self.bound_port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
            method, target, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = target.split("?", 1)[0]
            if method == "POST" and path in self.post_routes:
                status, ctype, body = await self.post_routes[path]()
            elif method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            elif path in self.routes:
                status, ctype, body = await self.routes[path]()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


def json_response(status: int, obj: object) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(obj, indent=1) + "\n").encode()
