"""Starts a grandchild that ignores SIGTERM and holds the server's stdout and stderr open,
writes {"leader": pid, "grandchild": pid} to PID_FILE, then either hangs before answering
(GRANDCHILD_MODE=hang, the default) or serves normally and exits on stdin EOF, leaving the
grandchild behind (GRANDCHILD_MODE=serve). Either way the probe must leave no process of
its group alive."""

import json
import os
import subprocess
import sys
import time

SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"

if __name__ == "__main__":
    # The pids first, before the SDK's slow import: the test reads them even when the
    # probe's timeout ends this process early.
    child = subprocess.Popen([sys.executable, "-c", SLEEPER])
    with open(os.environ["PID_FILE"] + ".tmp", "w") as f:
        json.dump({"leader": os.getpid(), "grandchild": child.pid}, f)
    os.replace(os.environ["PID_FILE"] + ".tmp", os.environ["PID_FILE"])
    if os.environ.get("GRANDCHILD_MODE", "hang") == "serve":
        from _common import build, serve

        serve(build("grandchild"))
    else:
        time.sleep(600)
