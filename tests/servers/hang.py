"""Hangs before answering anything: its startup (the lifespan, say a database it waits
for) never completes, so the handshake is never answered. Ends on SIGTERM like most
servers; the probe must not wait for it longer than its timeout."""

from contextlib import asynccontextmanager

import anyio
from _common import build, serve


@asynccontextmanager
async def never_ready(server):  # type: ignore[no-untyped-def]
    await anyio.sleep_forever()
    yield {}


if __name__ == "__main__":
    serve(build("hang", lifespan=never_ready))
