"""What the test servers share: a tool set with every kind of annotation, and serving it.

The tools are chosen for the governance rules (DESIGN.md 6B) as much as for the probe: one
correctly read-only tool, one without annotations, one that says read-only *and*
destructive, one that only says it is not destructive, one destructive. Their listing is
paginated (PAGE_SIZE, default 2) so a probe must follow next_cursor to see them all.

Environment knobs: TOOL_DESCRIPTION replaces the first tool's description (a tool that
changes upstream, for the tool lock); EXTRA_TOOLS adds that many plain tools; PAGE_SIZE;
BANNER prints a non-JSON line on stdout before serving stdio (a common mistake real clients
tolerate); STARTUP_DELAY sleeps that many seconds before serving stdio (a slow start).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"path": {"type": "string", "description": "What to act on"}},
    "required": ["path"],
}


def tools() -> list[types.Tool]:
    description = os.environ.get("TOOL_DESCRIPTION", "Read a thing without changing it")
    listed = [
        types.Tool(
            name="read_thing",
            description=description,
            input_schema=SCHEMA,
            annotations=types.ToolAnnotations(
                read_only_hint=True, destructive_hint=False, idempotent_hint=True
            ),
        ),
        types.Tool(
            name="unannotated", description="Says nothing about itself", input_schema=SCHEMA
        ),
        types.Tool(
            name="contradictory",
            description="Claims read-only and destructive at once",
            input_schema=SCHEMA,
            annotations=types.ToolAnnotations(read_only_hint=True, destructive_hint=True),
        ),
        types.Tool(
            name="not_destructive_only",
            description="Only says it is not destructive",
            input_schema=SCHEMA,
            annotations=types.ToolAnnotations(destructive_hint=False),
        ),
        types.Tool(
            name="delete_thing",
            description="Deletes a thing",
            input_schema=SCHEMA,
            annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
        ),
    ]
    for i in range(int(os.environ.get("EXTRA_TOOLS", "0"))):
        listed.append(
            types.Tool(name=f"extra_{i}", description=f"Extra tool {i}", input_schema=SCHEMA)
        )
    return listed


def _page(
    items: list[Any], params: types.PaginatedRequestParams | None
) -> tuple[list[Any], str | None]:
    size = int(os.environ.get("PAGE_SIZE", "2"))
    start = int(params.cursor) if params is not None and params.cursor else 0
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def build(name: str, *, list_delay: float = 0.0, lifespan: Any = None) -> Server[Any]:
    async def list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        if list_delay:
            await anyio.sleep(list_delay)
        page, cursor = _page(tools(), params)
        return types.ListToolsResult(tools=page, next_cursor=cursor)

    async def list_prompts(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        prompts = [types.Prompt(name=f"prompt_{i}", description=f"Prompt {i}") for i in range(3)]
        page, cursor = _page(prompts, params)
        return types.ListPromptsResult(prompts=page, next_cursor=cursor)

    async def list_resources(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        resources = [types.Resource(uri=f"test://thing/{i}", name=f"thing_{i}") for i in range(4)]
        page, cursor = _page(resources, params)
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    kwargs: dict[str, Any] = {}
    if lifespan is not None:
        kwargs["lifespan"] = lifespan
    return Server(
        name,
        version="1.0.0",
        on_list_tools=list_tools,
        on_list_prompts=list_prompts,
        on_list_resources=list_resources,
        **kwargs,
    )


ASGI = Callable[[Any, Any, Any], Awaitable[None]]


def require_token(app: ASGI, token: str) -> ASGI:
    """Answer 401 to any HTTP request without ``Authorization: Bearer <token>``."""

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"").decode()
            if given != f"Bearer {token}":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"www-authenticate", b'Bearer error="invalid_token"'),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error":"invalid_token"}'})
                return
        await app(scope, receive, send)

    return guarded


def _sse_app(server: Server[Any]) -> Any:
    from mcp.server.sse import SseServerTransport
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    sse = SseServerTransport("/messages/")

    async def handle_sse(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as streams:
            await server.run(streams[0], streams[1], server.create_initialization_options())
        return Response()

    return Starlette(
        routes=[
            Route("/sse", endpoint=handle_sse, methods=["GET"]),
            Mount("/messages/", app=sse.handle_post_message),
        ]
    )


def serve(server: Server[Any], argv: list[str] | None = None) -> None:
    """Serve over stdio (default), or ``--http`` / ``--sse`` [``--token T``] on 127.0.0.1.

    Over HTTP the server binds port 0 itself and prints ``PORT <n>`` on stdout before
    serving, so a test knows the port without guessing a free one; the socket listens
    before the line is printed, so a connection made after reading it cannot be refused.
    """
    argv = sys.argv[1:] if argv is None else argv
    if "--http" not in argv and "--sse" not in argv:
        if os.environ.get("BANNER"):
            print("Starting the test server... (this line is not JSON-RPC)", flush=True)
        if os.environ.get("STARTUP_DELAY"):
            time.sleep(float(os.environ["STARTUP_DELAY"]))

        async def run_stdio() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(run_stdio)
        return

    import uvicorn

    app: Any = _sse_app(server) if "--sse" in argv else server.streamable_http_app()
    if "--token" in argv:
        app = require_token(app, argv[argv.index("--token") + 1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    anyio.run(lambda: uvicorn.Server(config).serve(sockets=[sock]))
