"""Probe many servers at once, each within its own timeout, and report every one.

A probe is a real client's best-effort startup: servers are probed concurrently (bounded),
and a failure is a result (with its phase, a one-line error and context), never an
exception, so one broken server cannot hide the others. Every probe of a run shares one
wall clock: the run's deadline is its start plus the timeout, and a server still starting
or listing then is killed, whenever its turn came. So N servers of which some hang take
one timeout, never more: a per-server clock started at each server's turn let hung servers
hold the slots while the others queued, and 20 servers with 5 hanging took two timeouts.
A server whose turn never came before the deadline is reported as such.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anyio

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
    inside a running loop. ``timeout`` bounds the whole run, from this call: every server's
    spawn, handshake and listing, and the SDK's first import, which overlaps the first
    servers' start-up; at most ``concurrency`` run at once. ``redact`` is applied to every
    text a result holds that could carry a secret. ``base_env`` (default os.environ) is
    where the minimal base environment of stdio servers is taken from. ``on_done`` is
    called with each result as it completes (on the probing thread), for live progress.
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

    results: list[ProbeResult | None] = [None] * len(specs)
    limiter = anyio.CapacityLimiter(concurrency)
    run_started = anyio.current_time()
    deadline = run_started + timeout  # one clock for every probe of the run
    sdk_ready = anyio.Event()
    sdk_failed: list[BaseException] = []

    async def load_sdk() -> None:
        # The SDK's import (one to two seconds) runs in a thread while the first stdio
        # servers start, instead of before them: their start-up overlaps it.
        try:
            await anyio.to_thread.run_sync(sdk.load_sdk)
        except Exception as e:
            sdk_failed.append(e)
        finally:
            sdk_ready.set()

    async def one(index: int, spec: ProbeSpec) -> None:
        async with limiter:
            now = anyio.current_time()
            if now >= deadline:
                result = _never_started(spec, timeout, concurrency, now - run_started)
            else:
                result = await probe_one(
                    spec,
                    timeout=timeout,
                    redact=redact,
                    base_env=base_env,
                    deadline=deadline,
                    sdk_ready=sdk_ready,
                )
        results[index] = result
        if on_done is not None:
            on_done(result)

    async with anyio.create_task_group() as tg:
        tg.start_soon(load_sdk)
        for index, spec in enumerate(specs):
            tg.start_soon(one, index, spec)
    if sdk_failed:
        raise sdk_failed[0]
    return [r for r in results if r is not None]


async def probe_one(
    spec: ProbeSpec,
    *,
    timeout: float,
    redact: Redact,
    base_env: Mapping[str, str] | None = None,
    deadline: float | None = None,
    sdk_ready: anyio.Event | None = None,
) -> ProbeResult:
    """Probe one server; every failure becomes a result.

    ``timeout`` counts from now, unless the run's ``deadline`` (anyio's clock) comes first.
    The handshake waits for ``sdk_ready`` (the SDK imported) when given.
    """
    if spec.transport not in TRANSPORTS:
        return _unsupported(
            spec,
            f"transport {spec.transport!r} is not one a probe speaks ({', '.join(TRANSPORTS)})",
        )
    if spec.transport == "stdio":
        if not spec.command:
            return _unsupported(spec, "a stdio server without a command")
        return await _probe_stdio(
            spec,
            timeout=timeout,
            redact=redact,
            base_env=base_env,
            deadline=deadline,
            sdk_ready=sdk_ready,
        )
    if not spec.url:
        return _unsupported(spec, f"an {spec.transport} server without a url")
    return await _probe_http(
        spec, timeout=timeout, redact=redact, deadline=deadline, sdk_ready=sdk_ready
    )


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


def _never_started(spec: ProbeSpec, timeout: float, concurrency: int, waited: float) -> ProbeResult:
    return ProbeResult(
        server=spec.server,
        target=spec.target,
        ok=False,
        transport=spec.transport,
        required=spec.required,
        latency_ms=round(waited * 1000, 1),
        phase=Phase.SPAWN,
        error=f"not started: the probe run's {timeout:g}s timeout passed while the servers "
        f"ahead held every slot (--concurrency {concurrency})",
        recoverable=True,
        context=ProbeContext(),
    )


def _deadline(started: float, timeout: float, run_deadline: float | None) -> float:
    own = started + timeout
    return own if run_deadline is None else min(own, run_deadline)


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


def _timed_out(timeout: float, phase: Phase, started: float, deadline: float) -> str:
    what = "answer the handshake" if phase is Phase.INITIALIZE else "finish the tool listing"
    had = deadline - started
    if had < timeout - 0.05:  # its turn came late: the run's clock was already running
        return (
            f"timed out at the probe run's {timeout:g}s deadline ({had:.1f}s after its start) "
            f"waiting for the server to {what}"
        )
    return f"timed out after {timeout:g}s waiting for the server to {what}"


async def _probe_stdio(
    spec: ProbeSpec,
    *,
    timeout: float,
    redact: Redact,
    base_env: Mapping[str, str] | None,
    deadline: float | None,
    sdk_ready: anyio.Event | None,
) -> ProbeResult:
    import anyio

    assert spec.command is not None
    started = anyio.current_time()
    deadline = _deadline(started, timeout, deadline)
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
                if sdk_ready is not None:
                    await sdk_ready.wait()
                await sdk.inventory(
                    lambda: sdk.stdio_streams(child, noise),
                    discover_timeout=_discover_timeout(deadline - started),
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
        error = _timed_out(timeout, progress.phase, started, deadline)
        recoverable, phase = True, progress.phase
    else:
        last = stderr_tail.splitlines()[-1] if stderr_tail else None
        diagnosis: Diagnosis = sdk.diagnose_stdio(
            failure, progress, exit_status=exit_status, last_stderr=last
        )
        error, recoverable, phase = diagnosis.error, diagnosis.recoverable, diagnosis.phase
    if noise.count:
        error += f"; it wrote {noise.count} line(s) on stdout that are not JSON-RPC"
    return _failed(spec, started, failed_at, phase, error, recoverable, context, redact)


async def _probe_http(
    spec: ProbeSpec,
    *,
    timeout: float,
    redact: Redact,
    deadline: float | None,
    sdk_ready: anyio.Event | None,
) -> ProbeResult:
    import anyio

    assert spec.url is not None
    started = anyio.current_time()
    deadline = _deadline(started, timeout, deadline)
    if sdk_ready is not None:  # the transports below are the SDK's
        with anyio.move_on_after(max(0.0, deadline - started)):
            await sdk_ready.wait()
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
                discover_timeout=_discover_timeout(deadline - started),
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
        error = _timed_out(timeout, progress.phase, started, deadline)
        recoverable, phase = True, progress.phase
    else:
        error, recoverable, phase = diagnosis.error, diagnosis.recoverable, diagnosis.phase
    context = ProbeContext(url=shown_url, http_status=diagnosis.http_status, deprecated=deprecated)
    return _failed(spec, started, failed_at, phase, error, recoverable, context, redact)
