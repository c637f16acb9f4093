"""A GOVERNED_TOOLS-style server (the seed story: reads free, writes blocked), with the
annotations real servers get wrong: plain JSON-RPC of the 2025-11-25 revision, no SDK
import, so it starts in tens of milliseconds.

Its tools, and the class each must get (DESIGN.md 6B):

- ``library_search``: ``readOnlyHint: true``: read-only;
- ``library_audit``: read-only in fact, but unannotated: destructive;
- ``library_stats``: a title and no hints: destructive;
- ``media_tag``: only ``destructiveHint: false``: mutating;
- ``media_delete``: destructive, and says so;
- ``media_purge``: ``readOnlyHint: "true"``, a string: the SDK's lax parse makes it true,
  so read-only (``core.tools.classify`` alone would not trust it);
- ``bulk_delete``: claims ``readOnlyHint: true`` although it deletes: read-only, which is
  why a policy still needs ``deny``.

TOOL_DESCRIPTION replaces ``library_search``'s description (a tool changed upstream after
review); LEAK appends its value to ``media_tag``'s description (a server that quotes its
own token).
"""

import json
import os
import sys

SCHEMA = {"type": "object", "properties": {"id": {"type": "string"}}}


def tools() -> list[dict]:
    leak = os.environ.get("LEAK", "")
    listed = [
        ("library_search", "Search the library", {"readOnlyHint": True}),
        ("library_audit", "Audit the library (reads only)", None),
        ("library_stats", "Library statistics", {"title": "Stats"}),
        (
            "media_tag",
            "Tag a media item" + (f" (token {leak})" if leak else ""),
            {"destructiveHint": False},
        ),
        ("media_delete", "Delete a media item", {"readOnlyHint": False, "destructiveHint": True}),
        ("media_purge", "Purge the media cache", {"readOnlyHint": "true"}),
        ("bulk_delete", "Delete many items", {"readOnlyHint": True}),
    ]
    out = []
    for name, description, annotations in listed:
        if name == "library_search" and os.environ.get("TOOL_DESCRIPTION"):
            description = os.environ["TOOL_DESCRIPTION"]
        tool = {"name": name, "description": description, "inputSchema": SCHEMA}
        if annotations is not None:
            tool["annotations"] = annotations
        out.append(tool)
    return out


def answer(message: dict) -> dict | None:
    if "id" not in message:
        return None  # a notification (notifications/initialized)
    method = message.get("method")
    reply: dict = {"jsonrpc": "2.0", "id": message["id"]}
    if method == "initialize":
        reply["result"] = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "governed", "version": "0.1"},
        }
    elif method == "tools/list":
        reply["result"] = {"tools": tools()}
    elif method == "ping":
        reply["result"] = {}
    else:
        reply["error"] = {"code": -32601, "message": f"Method not found: {method}"}
    return reply


if __name__ == "__main__":
    for line in sys.stdin:
        if line.strip():
            reply = answer(json.loads(line))
            if reply is not None:
                sys.stdout.write(json.dumps(reply) + "\n")
                sys.stdout.flush()
