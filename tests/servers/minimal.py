"""A well-behaved stdio server at the lowest cost: plain JSON-RPC of the 2025-11-25
revision, no SDK import (tens of milliseconds to start, where an SDK server needs about a
second of CPU). It answers ``server/discover`` with "method not found", as servers of
older revisions do, so a probe of it goes through the legacy ``initialize`` fallback.
Used where many servers must start at once (the bounded-time test).

IGNORE_UNKNOWN=1 makes it drop requests it does not know instead of answering "method not
found", as some servers do: the probe's discover then gets no answer at all.
LIST_DELAY sleeps that many seconds before answering tools/list."""

import json
import os
import sys
import time

TOOLS = [
    {
        "name": "echo",
        "description": "Echo the text back",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "annotations": {"readOnlyHint": True},
    }
]


def answer(message: dict) -> dict | None:
    method = message.get("method")
    if "id" not in message:
        return None  # a notification (notifications/initialized)
    reply: dict = {"jsonrpc": "2.0", "id": message["id"]}
    if method == "initialize":
        reply["result"] = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "minimal", "version": "0.1"},
        }
    elif method == "tools/list":
        time.sleep(float(os.environ.get("LIST_DELAY", "0")))
        reply["result"] = {"tools": TOOLS}
    elif method == "ping":
        reply["result"] = {}
    elif os.environ.get("IGNORE_UNKNOWN"):
        return None
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
