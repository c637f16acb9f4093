"""Not an MCP server at all: answers every line on stdin with text that is not JSON-RPC
(like a CLI mistaken for a server). GARBAGE_EXIT=1 makes it exit after the first line,
status 0, instead of carrying on."""

import os
import sys

if __name__ == "__main__":
    print("Welcome to garbage 1.0", flush=True)
    for n, _line in enumerate(sys.stdin):
        print(f"unknown command #{n}; type 'help'", flush=True)
        if os.environ.get("GARBAGE_EXIT"):
            sys.exit(0)
