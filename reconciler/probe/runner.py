"""Probe many servers at once, each within its own timeout, and report every one.

A probe is a real client's best-effort startup: servers are probed concurrently (bounded),
each gets the same per-server timeout counted from when its turn starts, and a failure is a
result (with its phase, a one-line error and context), never an exception. So the total
time of N servers of which some hang is about one timeout, not the sum, and one broken
server cannot hide the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from reconciler.probe import client as sdk
from reconciler.probe import process
from reconciler.probe.client import Diagnosis, Inventory, Progress
from reconciler.probe.model import TRANSPORTS, Phase, ProbeContext, ProbeResult, ProbeSpec

Redact = Callable[[str], str]

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 8
# How long the stderr of a reaped server may take to reach its end (the pipe closes as the
# group dies; this only bounds a descendant that escaped the group and holds it open).
_STDERR_SETTLE = 0.5


def probe_all(
    specs: Sequence[ProbeSpec],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    redact: Redact,
    base_env: Mapping[str, str] | None = None,
    on_done: Callable[[ProbeResult], None] | None = None,
) -> list[ProbeResult]:
    """Probe every spec; return one result per spec, in the order given.

    Synchronous: it runs its own event loop (anyio), so call it from plain code, not from
    inside a running loop. ``timeout`` bounds each server (spawn, handshake and listing);
    at most ``concurrency`` run at once. ``redact`` is applied to every text a result holds
    that could carry a secret. ``base_env`` (default os.environ) is where the minimal base
    environment of stdio servers is taken from. ``on_done`` is called with each result as
    it completes (on the probing thread), for live progress.
    """
    import anyio

    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    return anyio.run(
        lambda: probe_all_async(
            specs,
            timeout=timeout,
            concurrency=concurrency,
            redact=redact,
            base_env=base_env,
            on_done=on_done,
        )
    )


async def probe_all_async(
    specs: Sequence[ProbeSpec],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    redact: Redact,
    base_env: Mapping[str, str] | None = None,
    on_done: Callable[[ProbeResult], None] | None = None,
) -> list[ProbeResult]:
    """``probe_all`` for callers already in an event loop (the watch daemon)."""
    import anyio

    # Load the SDK before any timer starts, so its import is not charged to the first servers.
    sdk.load_sdk()

    results: list[ProbeResult | None] = [None] * len(specs)
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int, spec: ProbeSpec) -> None:
        async with limiter:
            result = await probe_one(spec, timeout=timeout, redact=redact, base_env=base_env)
        results[index] = result
        if on_done is not None:
            on_done(result)

    async with anyio.create_task_group() as tg:
        for index, spec in enumerate(specs):
            tg.start_soon(one, index, spec)
    return [r for r in results if r is not None]


async def probe_one(
    spec: ProbeSpec,
    *,
    timeout: float,
    redact: Redact,
    base_env: Mapping[str, str] | None = None,
) -> ProbeResult:
    """Probe one server; every failure becomes a result."""
    if spec.transport not in TRANSPORTS:
        return _unsupported(
            spec,
            f"transport {spec.transport!r} is not one a probe speaks ({', '.join(TRANSPORTS)})",
        )
    if spec.transport == "stdio":
        if not spec.command:
            return _unsupported(spec, "a stdio server without a command")
        return await _probe_stdio(spec, timeout=timeout, redact=redact, base_env=base_env)
    if not spec.url:
        return _unsupported(spec, f"an {spec.transport} server without a url")
    return await _probe_http(spec, timeout=timeout, redact=redact)


def _unsupported(spec: ProbeSpec, reason: str) -> ProbeResult:
    return ProbeResult(
        server=spec.server,
        target=spec.target,
        ok=False,
        transport=spec.transport,
        required=spec.required,
        error=f"not probed: {reason}",
        recoverable=False,
        context=ProbeContext(unsupported=reason, deprecated=spec.transport == "sse"),
    )


def _discover_timeout(timeout: float) -> float:
    # Half the budget for the discover probe leaves the other half to the legacy
    # initialize that follows when the server does not answer it.
    return timeout / 2


def _ok(
    spec: ProbeSpec, found: Inventory, started: float, progress: Progress, context: ProbeContext
) -> ProbeResult:
    import anyio

    listed = progress.listed_at if progress.listed_at is not None else anyio.current_time()
    return ProbeResult(
        server=spec.server,
        target=spec.target,
        ok=True,
        transport=spec.transport,
        required=spec.required,
        protocol_version=found.protocol_version,
        server_name=found.server_name,
        server_version=found.server_version,
        tools=found.tools,
        prompts=found.prompts,
        resources=found.resources,
        latency_ms=round((listed - started) * 1000, 1),
        context=context,
    )


def _failed(
    spec: ProbeSpec,
    started: float,
    failed_at: float,
    phase: Phase,
    error: str,
    recoverable: bool,
    context: ProbeContext,
    redact: Redact,
) -> ProbeResult:
    return ProbeResult(
        server=spec.server,
        target=spec.target,
        ok=False,
        transport=spec.transport,
        required=spec.required,
        # Until the failure was known, not until the server was reaped.
        latency_ms=round((failed_at - started) * 1000, 1),
        phase=phase,
        error=redact(error),
        recoverable=recoverable,
        context=context,
    )


def _timed_out(timeout: float, phase: Phase) -> str:
    what = "answer the handshake" if phase is Phase.INITIALIZE else "finish the tool listing"
    return f"timed out after {timeout:g}s waiting for the server to {what}"


async def _probe_stdio(
    spec: ProbeSpec, *, timeout: float, redact: Redact, base_env: Mapping[str, str] | None
) -> ProbeResult:
    import anyio

    assert spec.command is not None
    started = anyio.current_time()
    deadline = started + timeout
    env = process.base_environment(spec.env, base_env)
    shown = redact(process.command_line(spec.command, spec.args))

    problem = process.spawn_problem(spec.command, spec.cwd, env)
    if problem is not None:
        context = ProbeContext(command=shown)
        return _failed(spec, started, started, Phase.SPAWN, problem, False, context, redact)
    try:
        child = await process.spawn(spec.command, spec.args, env, spec.cwd)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _failed(
            spec,
            started,
            anyio.current_time(),
            Phase.SPAWN,
            f"cannot start {spec.command}: {reason}",
            False,
            ProbeContext(command=shown),
            redact,
        )

    progress = sdk.Progress()
    noise = sdk.StdoutNoise()
    tail = process.StderrTail()
    failure: BaseException | None = None
    failed_at = started
    timed_out = False
    async with anyio.create_task_group() as tg:
        tg.start_soon(tail.drain, child.stderr)
        try:
            with anyio.fail_at(deadline):
                await sdk.inventory(
                    lambda: sdk.stdio_streams(child, noise),
                    discover_timeout=_discover_timeout(timeout),
                    progress=progress,
                    redact=redact,
                )
        except Exception as exc:
            failure, failed_at = exc, anyio.current_time()
            # The SDK may turn our cancellation into its own error on the way out.
            timed_out = isinstance(exc, TimeoutError) or failed_at >= deadline
        finally:
            exit_status = await process.stop(child, graceful=not timed_out)
            with anyio.move_on_after(_STDERR_SETTLE, shield=True):
                await tail.closed.wait()
            tg.cancel_scope.cancel()

    stderr_tail = tail.text(redact)
    context = ProbeContext(
        command=shown,
        exit_status=exit_status,
        stderr_tail=stderr_tail,
        stdout_noise=noise.text(redact),
    )
    if progress.found is not None:
        return _ok(spec, progress.found, started, progress, context)
    assert failure is not None
    if timed_out:
        error, recoverable, phase = _timed_out(timeout, progress.phase), True, progress.phase
    else:
        last = stderr_tail.splitlines()[-1] if stderr_tail else None
        diagnosis: Diagnosis = sdk.diagnose_stdio(
            failure, progress, exit_status=exit_status, last_stderr=last
        )
        error, recoverable, phase = diagnosis.error, diagnosis.recoverable, diagnosis.phase
    if noise.count:
        error += f"; it wrote {noise.count} line(s) on stdout that are not JSON-RPC"
    return _failed(spec, started, failed_at, phase, error, recoverable, context, redact)


async def _probe_http(spec: ProbeSpec, *, timeout: float, redact: Redact) -> ProbeResult:
    import anyio

    assert spec.url is not None
    started = anyio.current_time()
    deadline = started + timeout
    progress = sdk.Progress()
    log = sdk.HttpLog()
    headers = dict(spec.headers)
    if spec.transport == "sse":
        transport = sdk.sse_transport(spec.url, headers, timeout, log)
    else:
        transport = sdk.http_transport(spec.url, headers, timeout, log)
    failure: BaseException | None = None
    failed_at = started
    timed_out = False
    try:
        with anyio.fail_at(deadline):
            await sdk.inventory(
                transport,
                discover_timeout=_discover_timeout(timeout),
                progress=progress,
                redact=redact,
            )
    except Exception as exc:
        failure, failed_at = exc, anyio.current_time()
        timed_out = isinstance(exc, TimeoutError) or failed_at >= deadline

    shown_url = redact(spec.url)
    deprecated = spec.transport == "sse"
    if progress.found is not None:
        context = ProbeContext(url=shown_url, deprecated=deprecated)
        return _ok(spec, progress.found, started, progress, context)
    assert failure is not None
    diagnosis = sdk.diagnose_http(failure, progress, log, spec.url)
    if timed_out and diagnosis.http_status is None:
        error, recoverable, phase = _timed_out(timeout, progress.phase), True, progress.phase
    else:
        error, recoverable, phase = diagnosis.error, diagnosis.recoverable, diagnosis.phase
    context = ProbeContext(url=shown_url, http_status=diagnosis.http_status, deprecated=deprecated)
    return _failed(spec, started, failed_at, phase, error, recoverable, context, redact)
