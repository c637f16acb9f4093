"""Crashes on start with exit status 3, after 30 lines of log on stderr and a fatal line
that quotes its API_TOKEN (the probe must mask it in the stderr tail it reports).
DUMP_ENV=1 also logs the names of the environment variables it was given."""

import os
import sys

from _common import build

if __name__ == "__main__":
    build("crash-on-start")
    for i in range(30):
        print(f"loading plugin {i}", file=sys.stderr)
    if os.environ.get("DUMP_ENV"):
        print("env: " + " ".join(sorted(os.environ)), file=sys.stderr)
    token = os.environ.get("API_TOKEN", "")
    print(f"fatal: the upstream API rejected token {token}", file=sys.stderr, flush=True)
    sys.exit(3)
