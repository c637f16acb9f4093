"""The daemon's Prometheus metrics and its tiny HTTP endpoint (``/metrics``, ``/healthz``).

A handful of series do not justify prometheus-client (which also binds every interface by
default): the text exposition format is a few lines of code, and the server is the
standard library's, bound to loopback unless the operator names another address.

    reconciler_passes_total{result}            counter: converged, drift, failed, invalid, error
    reconciler_pass_duration_seconds           histogram of pass durations
    reconciler_target_drift{target}            gauge: actionable changes left after the last pass
    reconciler_target_up{target}               gauge: 1 if the target's last pass had no error
    reconciler_target_backoff_seconds{target}  gauge: how long the target is held back
    reconciler_last_success_timestamp_seconds  gauge: end of the last pass that failed nothing
    reconciler_desired_valid                   gauge: 1 while desired state loads

With ``watch --probe-interval S``, the servers themselves (the last probe; ``target`` is
empty for a server's desired definition, the label is kept for probes of live entries):

    mcp_reconciler_server_up{server,target}               gauge: 1 if the server answered
    mcp_reconciler_server_tools{server,target}            gauge: tools it listed
    mcp_reconciler_probe_latency_seconds{server,target}   gauge: time to list its tools
    mcp_reconciler_probe_timestamp_seconds                gauge: end of the last probe
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from reconciler.app.ui import Site
from reconciler.core.errors import UsageError
from reconciler.probe import ProbeResult

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RESULTS = ("converged", "drift", "failed", "invalid", "error")


class Metrics:
    """Thread-safe counters and gauges, rendered in the Prometheus text format 0.0.4."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.passes = dict.fromkeys(RESULTS, 0)
        self.bucket_counts = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.drift: dict[str, int] = {}
        self.up: dict[str, int] = {}
        self.backoff: dict[str, float] = {}
        self.last_success: float | None = None
        self.desired_valid = 1
        self.heartbeat = time.monotonic()
        # (server, target or "") -> what the last probe found
        self.server_up: dict[tuple[str, str], int] = {}
        self.server_tools: dict[tuple[str, str], int] = {}
        self.probe_latency: dict[tuple[str, str], float] = {}
        self.last_probe: float | None = None

    def observe_probe(self, results: Iterable[ProbeResult]) -> None:
        """Replace the server series with one probe's results (gone servers vanish)."""
        up: dict[tuple[str, str], int] = {}
        tools: dict[tuple[str, str], int] = {}
        latency: dict[tuple[str, str], float] = {}
        for r in results:
            key = (r.server, r.target or "")
            up[key] = int(r.ok)
            if r.ok:
                tools[key] = len(r.tools)
            if r.latency_ms is not None:
                latency[key] = r.latency_ms / 1000
        with self._lock:
            self.server_up, self.server_tools, self.probe_latency = up, tools, latency
            self.last_probe = time.time()

    def observe_pass(self, result: str, duration: float) -> None:
        with self._lock:
            self.passes[result] = self.passes.get(result, 0) + 1
            self.duration_sum += duration
            self.duration_count += 1
            for i, bound in enumerate(BUCKETS):
                if duration <= bound:
                    self.bucket_counts[i] += 1
            if result in ("converged", "drift"):
                self.last_success = time.time()

    def observe_target(self, name: str, *, drift: int, up: bool) -> None:
        with self._lock:
            self.drift[name] = drift
            self.up[name] = int(up)

    def set_backoff(self, backoff: Mapping[str, float]) -> None:
        with self._lock:
            self.backoff = dict(backoff)

    def forget_targets(self, keep: set[str]) -> None:
        """Drop series of targets no longer declared."""
        with self._lock:
            for series in (self.drift, self.up):
                for name in [n for n in series if n not in keep]:
                    del series[name]

    def set_desired_valid(self, valid: bool) -> None:
        with self._lock:
            self.desired_valid = int(valid)

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def render(self) -> str:
        with self._lock:
            out: list[str] = []

            def family(name: str, kind: str, text: str) -> None:
                out.append(f"# HELP {name} {text}")
                out.append(f"# TYPE {name} {kind}")

            family("reconciler_passes_total", "counter", "Reconcile passes by result.")
            for result, count in self.passes.items():
                out.append(f'reconciler_passes_total{{result="{result}"}} {count}')
            family("reconciler_pass_duration_seconds", "histogram", "Duration of a pass.")
            for bound, count in zip(BUCKETS, self.bucket_counts, strict=True):
                out.append(f'reconciler_pass_duration_seconds_bucket{{le="{bound:g}"}} {count}')
            out.append(
                f'reconciler_pass_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}'
            )
            out.append(f"reconciler_pass_duration_seconds_sum {self.duration_sum:.6f}")
            out.append(f"reconciler_pass_duration_seconds_count {self.duration_count}")
            family(
                "reconciler_target_drift", "gauge", "Actionable changes left after the last pass."
            )
            for name, value in sorted(self.drift.items()):
                out.append(f'reconciler_target_drift{{target="{_label(name)}"}} {value}')
            family("reconciler_target_up", "gauge", "1 if the target's last pass had no error.")
            for name, value in sorted(self.up.items()):
                out.append(f'reconciler_target_up{{target="{_label(name)}"}} {value}')
            family(
                "reconciler_target_backoff_seconds",
                "gauge",
                "Seconds until a failing target is retried.",
            )
            for name, seconds in sorted(self.backoff.items()):
                out.append(
                    f'reconciler_target_backoff_seconds{{target="{_label(name)}"}} {seconds:.3f}'
                )
            family(
                "reconciler_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last pass in which no required target failed.",
            )
            if self.last_success is not None:
                out.append(f"reconciler_last_success_timestamp_seconds {self.last_success:.3f}")
            family("reconciler_desired_valid", "gauge", "1 while the desired state is valid.")
            out.append(f"reconciler_desired_valid {self.desired_valid}")
            if self.last_probe is not None:
                self._render_probe(out, family)
            return "\n".join(out) + "\n"

    def _render_probe(self, out: list[str], family: Callable[[str, str, str], None]) -> None:
        def labels(key: tuple[str, str]) -> str:
            return f'server="{_label(key[0])}",target="{_label(key[1])}"'

        family("mcp_reconciler_server_up", "gauge", "1 if the server answered the last probe.")
        for key, value in sorted(self.server_up.items()):
            out.append(f"mcp_reconciler_server_up{{{labels(key)}}} {value}")
        family("mcp_reconciler_server_tools", "gauge", "Tools the server listed when probed.")
        for key, count in sorted(self.server_tools.items()):
            out.append(f"mcp_reconciler_server_tools{{{labels(key)}}} {count}")
        family(
            "mcp_reconciler_probe_latency_seconds",
            "gauge",
            "Seconds the last probe took to reach the server and list its tools.",
        )
        for key, seconds in sorted(self.probe_latency.items()):
            out.append(f"mcp_reconciler_probe_latency_seconds{{{labels(key)}}} {seconds:.6f}")
        family("mcp_reconciler_probe_timestamp_seconds", "gauge", "Unix time of the last probe.")
        out.append(f"mcp_reconciler_probe_timestamp_seconds {self.last_probe:.3f}")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_address(addr: str, option: str = "--metrics") -> tuple[str, int]:
    """``PORT`` or ``:PORT`` means loopback; ``HOST:PORT`` and ``[V6]:PORT`` are taken as given."""
    text = addr.strip()
    host, port_text = "127.0.0.1", text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        host = host or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"{option} {addr!r}: expected PORT, :PORT or HOST:PORT") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"{option} {addr!r}: port out of range")
    return host, port


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` from a background thread until ``close()``;
    with a ``site`` (``watch --ui``), the status page's routes as well. Either may be left
    out: ``metrics`` None serves the page alone (``--ui`` at another address)."""

    def __init__(
        self,
        addr: str,
        metrics: Metrics | None,
        healthy: Callable[[], tuple[bool, str]],
        *,
        site: Site | None = None,
        option: str = "--metrics",
    ) -> None:
        host, port = parse_address(addr, option)

        # The HTTP server only loads when the daemon serves metrics.
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if site is not None and site.handles(path):
                    self._page(site, path)
                elif path == "/metrics" and metrics is not None:
                    self._send(200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    ok, text = healthy()
                    self._send(200 if ok else 503, text + "\n", "text/plain; charset=utf-8")
                else:
                    self._send(404, "not found\n", "text/plain; charset=utf-8")

            def _page(self, site: Site, path: str) -> None:
                response = site.get(
                    path, self.headers.get("Authorization"), self.headers.get("Host")
                )
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if response.stream is None:
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                    return
                self.end_headers()
                try:
                    for chunk in response.stream:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:  # the browser went away
                    return

            def _send(self, code: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return None  # scrapes are not worth a log line each

        server_class = ThreadingHTTPServer
        if ":" in host:
            import socket

            class V6(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            server_class = V6
        try:
            self.server = server_class((host, port), Handler)
        except OSError as e:
            raise UsageError(f"{option} {addr}: cannot listen: {e.strerror}") from e
        self.server.daemon_threads = True
        bound = self.server.server_address
        self.host, self.port = str(bound[0]), int(bound[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="reconciler-metrics",
            daemon=True,
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.shutdown()
            self.server.server_close()
        self.thread.join(timeout=2)
