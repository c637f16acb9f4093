"""Answers the handshake at once, then takes LIST_DELAY seconds (default 60) to list its
tools: longer than any probe timeout in the tests, so the probe fails in list_tools."""

import os

from _common import build, serve

if __name__ == "__main__":
    serve(build("slow-list-tools", list_delay=float(os.environ.get("LIST_DELAY", "60"))))
