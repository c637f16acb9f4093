"""The daemon's read-only status page (``reconcile watch --ui ADDR``) and ``/api/status``.

People pick a controller for its picture of what is in sync and what is not. The daemon
already knows it after every pass; this module turns what it knows into one JSON snapshot
(schema 1, the shape of ``status --json`` plus the daemon's own history) and renders that
snapshot as server-side HTML: the server x target matrix, a detail view per cell, the
divergence records with their commits, probe health, governance, and the last passes.

Two halves, so the rendering can be tested without a daemon or a socket:

- pure: ``snapshot`` (data in, JSON out), ``render_page`` and ``render_cell`` (JSON in,
  HTML out: every piece of user data goes through ``h``), ``authorized`` (the token check);
- ``Site``: the current snapshot, its version (server-sent events tell a browser that a
  new pass landed), and the routes the daemon's HTTP server (``app.metrics``) hands over.

No secret value can reach the page: reports and divergence drift hold sealed values
(fingerprints), probe results are redacted when built, and every response body is scrubbed
by the redactor the daemon hands in, the UI token's value included.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import ipaddress
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from reconciler.app.status import NOT_PLACED, matrix_json
from reconciler.core.plan import Action
from reconciler.core.report import RunReport, TargetReport, plural
from reconciler.secrets import Redactor
from reconciler.store.desired import DesiredState

SSE_WINDOW = 30.0  # one event stream lasts this long; the browser reconnects by itself
REFRESH = 30  # meta refresh (seconds) for browsers without JavaScript


# -- the snapshot (pure) ---------------------------------------------------------------------


def settled(t: TargetReport) -> TargetReport:
    """A target as an applying pass left it: what it applied is in sync now."""
    done = [c for c in t.changes if t.was_applied(c)]
    if not done:
        return t
    synced = tuple(c.server for c in done if c.action is not Action.DELETE)
    return replace(
        t,
        changes=t.pending,
        applied=frozenset(),
        in_sync=tuple(dict.fromkeys((*t.in_sync, *synced))),
    )


def tool_classes(tools: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Tool counts by class, from their MCP annotations with the spec's defaults (DESIGN
    6B): read-only only on an explicit hint; destructive unless explicitly not."""
    counts = {"read-only": 0, "mutating": 0, "destructive": 0}
    for tool in tools:
        hints = tool.get("annotations") or {}
        if hints.get("readOnlyHint") is True:
            counts["read-only"] += 1
        elif hints.get("destructiveHint") is False:
            counts["mutating"] += 1
        else:
            counts["destructive"] += 1
    return counts


def probe_json(servers: Sequence[Mapping[str, Any]], finished: float) -> dict[str, Any]:
    """The page's probe section: per server its health, without tool schemas."""
    rows = []
    for s in servers:
        tools = s.get("tools") or []
        context = s.get("context") or {}
        rows.append(
            {
                "server": s.get("server"),
                "target": s.get("target"),
                "status": s.get("status"),
                "required": s.get("required"),
                "transport": s.get("transport"),
                "protocol_version": s.get("protocol_version"),
                "tool_count": s.get("tool_count"),
                "tool_classes": tool_classes(tools) if s.get("ok") else None,
                "latency_ms": s.get("latency_ms"),
                "phase": s.get("phase"),
                "error": s.get("error"),
                "http_status": context.get("http_status"),
            }
        )
    return {"finished": finished, "servers": rows}


def snapshot(
    state: DesiredState,
    reports: Sequence[TargetReport],
    last: Mapping[str, Any] | None,
    *,
    daemon: Mapping[str, Any] | None = None,
    passes: Sequence[Mapping[str, Any]] = (),
    divergences: Sequence[Mapping[str, Any]] | None = None,
    probe: Mapping[str, Any] | None = None,
    governance: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """What ``/api/status`` serves: ``status --json`` (schema 1) plus the daemon's history.

    ``governance`` rows are read as they come (the tool policy fills them): ``server``,
    ``target``, ``blocked`` (tool names), ``enforceable`` (false: the target's kind has no
    control for it) and ``reason``; None leaves the section saying there is no policy data.
    """
    report = RunReport(dry_run=False, targets=tuple(settled(t) for t in reports))
    data = matrix_json(state, report, dict(last) if last is not None else None)
    data["daemon"] = dict(daemon) if daemon is not None else None
    data["passes"] = [dict(p) for p in passes]
    data["divergences"] = None if divergences is None else [dict(d) for d in divergences]
    data["probe"] = dict(probe) if probe is not None else None
    data["governance"] = None if governance is None else [dict(g) for g in governance]
    return data


# -- rendering (pure) ------------------------------------------------------------------------


def h(value: object) -> str:
    """HTML-escape user data (names, values, errors, reasons)."""
    return html.escape("" if value is None else str(value), quote=True)


def cell_path(target: str, server: str) -> str:
    return f"/cell/{quote(target, safe='')}/{quote(server, safe='')}"


def parse_cell_path(path: str) -> tuple[str, str] | None:
    parts = path.split("/")
    if len(parts) != 4 or parts[1] != "cell" or not parts[2] or not parts[3]:
        return None
    return unquote(parts[2]), unquote(parts[3])


def _head(*columns: str) -> str:
    """A table's header row: each column's name, as written (no markup in them)."""
    return "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"


def _when(stamp: object) -> str:
    if not isinstance(stamp, (int, float)):
        return "?"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(value: Any) -> str:
    """A JSON value of a report (``{"secret": "4f1c2a"}`` for a sealed one) as shown text."""
    if value is None:
        return "(absent)"
    if isinstance(value, dict) and set(value) == {"secret"}:
        return f"‹secret:{value['secret']}›"
    return json.dumps(value, ensure_ascii=False)


def _targets(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {t["name"]: t for t in data.get("targets") or []}


def _change(target: Mapping[str, Any], server: str) -> Mapping[str, Any] | None:
    return next((c for c in target.get("changes") or [] if c.get("server") == server), None)


def _governance(data: Mapping[str, Any], target: str, server: str) -> Mapping[str, Any] | None:
    rows: list[Mapping[str, Any]] = data.get("governance") or []
    return next((g for g in rows if g.get("target") == target and g.get("server") == server), None)


@dataclass(frozen=True)
class Cell:
    """One matrix cell as the page shows it: its state (a CSS class too) and its label."""

    state: str
    label: str
    link: bool = True


def cell_of(data: Mapping[str, Any], server: str, target: str) -> Cell:
    rows = {**(data.get("servers") or {}), **(data.get("mirrors") or {})}
    t = _targets(data).get(target, {})
    if server in rows:
        state = rows[server].get(target, NOT_PLACED)
    elif server in (data.get("unmanaged") or {}).get(target, ()):
        state = "unmanaged"
    else:
        state = NOT_PLACED
    if state == NOT_PLACED:
        return Cell("none", "·", link=False)
    label = state.replace("_", " ")
    if state == "drift":
        change = _change(t, server)
        if change is not None:
            label = f"drift ({change.get('origin')})"
    governed = _governance(data, target, server)
    if governed is not None and governed.get("enforceable") is False and state == "in_sync":
        return Cell("not_enforceable", "not enforceable")
    return Cell(state, label)


def _rows(data: Mapping[str, Any]) -> list[str]:
    rows = [*(data.get("servers") or {}), *(data.get("mirrors") or {})]
    for names in (data.get("unmanaged") or {}).values():
        rows += [n for n in names if n not in rows]
    return rows


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d232a;background:#fbfbfc}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
table{border-collapse:collapse;margin:.3rem 0}th,td{border:1px solid #d5d9de;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#eef1f4}code{font:12px ui-monospace,monospace}
.matrix td{text-align:center;min-width:6.5rem}
.matrix a{color:inherit;text-decoration:none;display:block}
.in_sync{background:#dff3e4}.drift,.missing{background:#fde8c8}.allowed{background:#dbe9fb}
.error,.down,.expired,.changed{background:#f8d3d3}.unmanaged,.disabled{background:#ececec}
.not_enforceable,.expiring,.unreviewed,.stale{background:#fff3b0}.none{color:#9aa3ad}
.active,.up{background:#dff3e4}.summary{color:#4b5562}.bar{display:inline-block;height:.7rem;
background:#6b8fd6;vertical-align:middle}.muted{color:#6b7480}nav a{margin-right:1rem}
"""

LIVE_JS = (
    "(function(){if(!window.EventSource)return;var s=new EventSource('/events');"
    "s.addEventListener('pass',function(){location.reload();});})();\n"
)


def _page(title: str, body: str, *, refresh: bool = True) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"{meta}<title>{h(title)}</title>"
        '<link rel="stylesheet" href="/static/style.css">'
        '<script src="/static/live.js" defer></script></head>'
        f"<body>{body}</body></html>\n"
    )


def _daemon_section(data: Mapping[str, Any]) -> str:
    d = data.get("daemon") or {}
    if not d:
        return '<p class="summary" id="daemon">no daemon data</p>'
    bits = [
        f"daemon {'running (pid ' + h(d.get('pid')) + ')' if d.get('running') else 'stopped'}",
        f"desired state {'valid' if d.get('desired_valid', True) else 'INVALID'}",
        f"{h(d.get('passes', 0))} pass(es)",
    ]
    if d.get("next_resync_in_s") is not None:
        bits.append(f"next resync in {h(round(float(d['next_resync_in_s'])))}s")
    if d.get("next_probe_in_s") is not None:
        bits.append(f"next probe in {h(round(float(d['next_probe_in_s'])))}s")
    bits.append(f"updated {_when(d.get('updated'))}")
    out = f'<p class="summary" id="daemon">{" · ".join(bits)}</p>'
    errors = d.get("desired_errors") or []
    if errors:
        out += "<ul>" + "".join(f'<li class="error">{h(e)}</li>' for e in errors) + "</ul>"
    backoff = d.get("backoff") or {}
    if backoff:
        out += '<h2>Backoffs</h2><table id="backoffs">'
        out += _head("target", "failures", "retry in")
        for name, b in sorted(backoff.items()):
            out += (
                f"<tr><td>{h(name)}</td><td>{h(b.get('failures'))}</td>"
                f"<td>{h(b.get('retry_in_s'))}s</td></tr>"
            )
        out += "</table>"
    return out


def _matrix_section(data: Mapping[str, Any]) -> str:
    names = [t["name"] for t in data.get("targets") or []]
    out = ['<h2>Servers × targets</h2><table class="matrix" id="matrix"><tr><th>server</th>']
    out += [f"<th>{h(n)}</th>" for n in names]
    out.append("</tr>")
    for row in _rows(data):
        out.append(f"<tr><th>{h(row)}</th>")
        for name in names:
            c = cell_of(data, row, name)
            inner = h(c.label)
            if c.link:
                inner = f'<a href="{h(cell_path(name, row))}">{inner}</a>'
            out.append(
                f'<td class="{h(c.state)}" data-server="{h(row)}" data-target="{h(name)}">'
                f"{inner}</td>"
            )
        out.append("</tr>")
    out.append("</table>")
    failed = [t for t in data.get("targets") or [] if t.get("error")]
    if failed:
        out.append('<ul id="errors">')
        out += [f'<li class="error">{h(t["name"])}: {h(t["error"])}</li>' for t in failed]
        out.append("</ul>")
    return "".join(out)


def _divergences_section(data: Mapping[str, Any]) -> str:
    records = data.get("divergences")
    out = ['<h2>Divergence records</h2><table id="divergences">']
    if records is None:
        return out[0] + "</table><p class='muted'>not collected</p>"
    if not records:
        return '<h2>Divergence records</h2><p class="muted" id="divergences">none</p>'
    out.append(_head("record", "target / server", "fields", "state", "reason", "expires", "commit"))
    for r in records:
        state = str(r.get("state"))
        if not r.get("reviewed") and state != "unreviewed":
            state += ", unreviewed"
        commit = "(not committed)"
        if r.get("commit"):
            commit = (
                f"<code>{h(str(r['commit'])[:10])}</code> {h(r.get('author'))} {h(r.get('date'))}"
            )
        out.append(
            f'<tr data-record="{h(r.get("id"))}"><td>{h(r.get("id"))}</td>'
            f"<td>{h(r.get('target'))} / {h(r.get('server'))}</td>"
            f"<td><code>{h(', '.join(r.get('paths') or []) or '(whole entry)')}</code></td>"
            f'<td class="{h(r.get("state"))}">{h(state)}</td><td>{h(r.get("reason"))}</td>'
            f"<td>{h(r.get('expires') or 'never')}</td><td>{commit}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _probe_section(data: Mapping[str, Any]) -> str:
    probe = data.get("probe")
    if not probe:
        return (
            '<h2>Probe health</h2><p class="muted" id="probe">no probe yet '
            "(watch --probe-interval S probes every declared server)</p>"
        )
    out = [
        f'<h2>Probe health</h2><p class="muted">probed {_when(probe.get("finished"))}</p>',
        '<table id="probe">'
        + _head(
            "server",
            "health",
            "transport",
            "protocol",
            "tools",
            "by class",
            "latency",
            "last error",
        ),
    ]
    for s in probe.get("servers") or []:
        classes = s.get("tool_classes")
        by_class = (
            ", ".join(f"{n} {h(k)}" for k, n in classes.items() if n) if classes else ""
        ) or "—"
        error = ""
        if s.get("error"):
            error = f"{h(s.get('phase') or '?')}: {h(s.get('error'))}"
        where = f" on {h(s.get('target'))}" if s.get("target") else ""
        latency = f"{float(s['latency_ms']):.0f} ms" if s.get("latency_ms") is not None else ""
        status = str(s.get("status"))
        out.append(
            f'<tr data-server="{h(s.get("server"))}"><td>{h(s.get("server"))}{where}</td>'
            f'<td class="{h(status)}">{h(status)}</td><td>{h(s.get("transport"))}</td>'
            f"<td>{h(s.get('protocol_version') or '')}</td>"
            f"<td>{h(s.get('tool_count') if s.get('tool_count') is not None else '')}</td>"
            f"<td>{by_class}</td><td>{h(latency)}</td><td>{error}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _governance_section(data: Mapping[str, Any]) -> str:
    rows = data.get("governance")
    if not rows:
        return (
            '<h2>Governance</h2><p class="muted" id="governance">no tool policy in the '
            "status data</p>"
        )
    out = [
        '<h2>Governance</h2><table id="governance">'
        + _head("server", "target", "blocked tools", "enforcement")
    ]
    for g in rows:
        enforceable = g.get("enforceable", True)
        how = "enforced" if enforceable else f"not enforceable: {h(g.get('reason') or '')}"
        out.append(
            f"<tr><td>{h(g.get('server'))}</td><td>{h(g.get('target'))}</td>"
            f"<td><code>{h(', '.join(g.get('blocked') or []) or '—')}</code></td>"
            f'<td class="{"in_sync" if enforceable else "not_enforceable"}">{how}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def _timeline_section(data: Mapping[str, Any]) -> str:
    passes = data.get("passes") or []
    if not passes:
        return '<h2>Last passes</h2><p class="muted" id="passes">none yet</p>'
    longest = max(float(p.get("duration_s") or 0) for p in passes) or 1.0
    out = [
        '<h2>Last passes</h2><table id="passes">'
        + _head("#", "when", "trigger", "changed", "result", "duration")
    ]
    for p in reversed(passes):
        changes = p.get("changes") or []
        changed = "; ".join(f"{h(c[0])}/{h(c[1])} {h(c[2])}" for c in changes) if changes else "—"
        if p.get("pending"):
            changed += f" · {h(p['pending'])} pending"
        if p.get("errors"):
            changed += f" · failed: {h(', '.join(sorted(p['errors'])))}"
        duration = float(p.get("duration_s") or 0)
        width = max(1, round(120 * duration / longest))
        out.append(
            f'<tr data-pass="{h(p.get("pass"))}"><td>{h(p.get("pass"))}</td>'
            f"<td>{_when(p.get('finished'))}</td><td>{h(p.get('trigger'))}</td>"
            f'<td>{changed}</td><td class="{h(p.get("result"))}">{h(p.get("result"))}</td>'
            f'<td><span class="bar" style="width:{width}px"></span> {duration * 1000:.0f} ms'
            "</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def render_page(data: Mapping[str, Any]) -> str:
    code = data.get("exit_code")
    verdict = {0: "converged", 1: "drift", 3: "a required target failed"}.get(
        code if isinstance(code, int) else -1, "?"
    )
    body = (
        f'<h1>mcp-reconciler</h1><p class="summary">status: <b id="verdict">{h(verdict)}</b> '
        f"across {h(plural(len(data.get('targets') or []), 'target'))} · "
        '<a href="/api/status">/api/status</a></p>'
        + _daemon_section(data)
        + _matrix_section(data)
        + _divergences_section(data)
        + _probe_section(data)
        + _governance_section(data)
        + _timeline_section(data)
    )
    return _page("mcp-reconciler status", body)


def render_cell(data: Mapping[str, Any], target: str, server: str) -> str | None:
    """The detail view of one cell, or None when there is no such target."""
    t = _targets(data).get(target)
    if t is None:
        return None
    c = cell_of(data, server, target)
    out = [
        '<nav><a href="/">← status</a></nav>',
        f"<h1>{h(server)} on {h(target)}</h1>",
        f'<p class="summary">{h(t.get("kind"))} · <code>{h(t.get("location"))}</code> · '
        f'<span class="{h(c.state)}" id="cell-state">{h(c.label)}</span></p>',
    ]
    if t.get("error"):
        out.append(f'<p class="error" id="cell-error">error: {h(t["error"])}</p>')
    change = _change(t, server)
    if change is not None:
        out.append(
            f"<h2>{h(change.get('action'))} (origin {h(change.get('origin'))})</h2>"
            '<table id="diff">' + _head("field", "live", "desired", "last applied")
        )
        for f in change.get("diff") or []:
            last = _value(f["last_applied"]) if "last_applied" in f else ""
            out.append(
                f"<tr><td><code>{h(f.get('path'))}</code></td>"
                f"<td><code>{h(_value(f.get('live')))}</code></td>"
                f"<td><code>{h(_value(f.get('desired')))}</code></td>"
                f"<td><code>{h(last)}</code></td></tr>"
            )
            for line in f.get("details") or []:
                out.append(f'<tr><td></td><td colspan="3"><code>{h(line)}</code></td></tr>')
        out.append("</table>")
    for a in t.get("allowed") or []:
        if a.get("server") == server:
            out.append(
                f'<p class="allowed" id="allowed">allowed by <code>{h(a.get("record"))}</code> '
                f"at <code>{h(', '.join(a.get('paths') or []) or '(whole entry)')}</code>, "
                f"{h(a.get('state'))}, expires {h(a.get('expires') or 'never')}</p>"
            )
    for r in data.get("divergences") or []:
        if r.get("target") == target and r.get("server") == server:
            out.append(
                f'<p id="record">record {h(r.get("id"))}: {h(r.get("reason"))} '
                f"(commit <code>{h(str(r.get('commit') or '')[:10])}</code> "
                f"{h(r.get('author'))} {h(r.get('date'))})</p>"
            )
    governed = _governance(data, target, server)
    if governed is not None:
        out.append(
            f"<p>blocked tools: <code>{h(', '.join(governed.get('blocked') or []) or '—')}"
            "</code></p>"
        )
    notes = t.get("notes") or []
    if notes:
        out.append('<h2>Notes on this target</h2><ul id="notes">')
        out += [f"<li>{h(note)}</li>" for note in notes]
        out.append("</ul>")
    if change is None and c.state == "in_sync":
        out.append('<p class="muted">no difference: the live entry matches desired state</p>')
    if c.state == "unmanaged":
        out.append(
            '<p class="muted">this entry is on the target but not in desired state '
            "(reconcile adopt or import takes it in)</p>"
        )
    return _page(f"{server} on {target}", "".join(out))


# -- the token (pure) ------------------------------------------------------------------------


def authorized(header: str | None, token: str) -> bool:
    """``Authorization: Bearer TOKEN``, or basic auth with TOKEN as the password."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        _user, sep, password = decoded.partition(":")
        return bool(sep) and hmac.compare_digest(password.encode(), token.encode())
    return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name, IPv6 with or without brackets) is this machine
    only."""
    host = host.strip().removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str | None) -> str:
    """The host of a ``Host`` header, without its port."""
    value = (header or "").strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rpartition(":")[0] if value.count(":") == 1 else value


# -- the site: current snapshot, routes, events ----------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # server-sent events, written as they come


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; img-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Site:
    """The page's routes over the daemon's latest snapshot; thread-safe."""

    def __init__(
        self, redactor: Redactor, token: str | None = None, *, local_only: bool = False
    ) -> None:
        """``local_only``: served on loopback, so answer only requests naming a loopback host
        (a web page elsewhere cannot read it through DNS rebinding)."""
        self._redactor = redactor
        self._token = token
        self._local_only = local_only
        self._changed = threading.Condition()
        self._data: dict[str, Any] = {"schema": 1, "targets": [], "servers": {}}
        self.version = 0
        self._closed = False

    def publish(self, data: Mapping[str, Any]) -> None:
        with self._changed:
            self._data = dict(data)
            self.version += 1
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def data(self) -> dict[str, Any]:
        with self._changed:
            return self._data

    def handles(self, path: str) -> bool:
        return (
            path in ("/", "/index.html", "/api/status", "/events")
            or path.startswith("/static/")
            or path.startswith("/cell/")
        )

    def _text(self, status: int, body: str, content_type: str) -> Response:
        scrubbed = self._redactor.scrub(body)  # nothing a redactor knows leaves the process
        return Response(status, scrubbed.encode("utf-8"), content_type, SECURITY_HEADERS)

    def get(self, path: str, authorization: str | None = None, host: str | None = None) -> Response:
        if self._local_only and not is_loopback(host_name(host)):
            return Response(403, b"this page answers only to a loopback host name\n")
        if self._token is not None and not authorized(authorization, self._token):
            return Response(
                401,
                b"authentication required\n",
                headers={"WWW-Authenticate": 'Basic realm="mcp-reconciler", charset="UTF-8"'},
            )
        data = self.data
        if path in ("/", "/index.html"):
            return self._text(200, render_page(data), "text/html; charset=utf-8")
        if path == "/api/status":
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
            return self._text(200, text, "application/json; charset=utf-8")
        if path == "/static/style.css":
            return self._text(200, STYLE, "text/css; charset=utf-8")
        if path == "/static/live.js":
            return self._text(200, LIVE_JS, "text/javascript; charset=utf-8")
        if path == "/events":
            headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
            return Response(200, b"", "text/event-stream", headers, self.events(self.version))
        cell = parse_cell_path(path)
        page = render_cell(data, *cell) if cell is not None else None
        if page is None:
            return self._text(404, "not found\n", "text/plain; charset=utf-8")
        return self._text(200, page, "text/html; charset=utf-8")

    def events(self, seen: int, window: float = SSE_WINDOW) -> Iterator[bytes]:
        """``event: pass`` each time a new snapshot lands, for ``window`` seconds."""
        deadline = time.monotonic() + window
        yield b"retry: 2000\n\n"
        while True:
            with self._changed:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return
                if self.version == seen:
                    self._changed.wait(timeout=min(remaining, 15.0))
                if self._closed:
                    return
                version = self.version
            if version != seen:
                seen = version
                yield f"event: pass\ndata: {version}\n\n".encode()
            else:
                yield b": keep-alive\n\n"
