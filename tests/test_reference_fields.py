"""Where each client kind expands a reference, and what happens to one anywhere else.

A client that expands ``$VAR`` only in some fields (Crush: the command, env and headers;
Kiro: the same) reads a reference in ``args`` or ``url`` as literal text. There the secrets
layer resolves it into the file (mode 0600, named in the plan with why and how to keep it
out); in a field the client expands it stays a reference in the client's own syntax. The
table below is the per-kind knowledge the family modules declare, from the clients' source
(cited beside each kind in ``targets/ideclients.py`` and ``targets/yamlclients.py``).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from reconciler import targets
from reconciler.secrets import referable
from reconciler.targets import ideclients
from tests.conftest import Workspace

CANARY = "canary-token-" + "Hq4Tz8Lw2Rb6"
FIELDS = ("command", "args", "url", "env", "headers")
EVERY = frozenset(FIELDS)
SHELL_FIELDS = frozenset({"command", "env", "headers"})

# The fields each kind expands a reference in (empty: it expands none).
EXPANDS: dict[str, frozenset[str]] = {
    "crush": SHELL_FIELDS,  # charmbracelet/crush internal/config (releases before ResolvedURL)
    "kiro": SHELL_FIELDS,  # amazon-q-developer-cli mcp_client/client.rs
    "roo": EVERY,  # Roo-Code McpHub.ts: injectVariables over the whole server config
    "warp": EVERY,  # warp app/src/ai/mcp/parsing.rs: substitute_env_vars over the JSON
    "continue": EVERY,  # config-yaml fillTemplateVariables: over the whole YAML text
    "cline": frozenset(),
    "zed": frozenset(),
    "lmstudio": frozenset(),
    "goose": frozenset(),
}


def _key(field: str) -> str | None:
    return "API_TOKEN" if field in ("env", "headers") else None


@pytest.mark.parametrize(("kind", "field"), [(kind, field) for kind in EXPANDS for field in FIELDS])
def test_a_reference_stays_only_where_the_kind_expands_it(kind: str, field: str) -> None:
    capability = targets.capability(kind)
    assert capability is not None
    expected = field in EXPANDS[kind]
    assert referable(capability, field, _key(field), "${env:API_TOKEN}") is expected
    assert capability.expands_in(field) is expected


DIALECTS = sorted(k for k, f in targets.FAMILIES.items() if hasattr(f, "syntax"))


@pytest.mark.parametrize("kind", DIALECTS)
def test_the_capability_and_the_dialect_declare_the_same_fields(kind: str) -> None:
    family = targets.FAMILIES[kind]
    assert family.capability.reference_fields == family.syntax.fields


@pytest.mark.parametrize(
    ("field", "native", "essence"),
    [
        ("url", "https://h.example/$HOME/mcp", "https://h.example/$HOME/mcp"),
        ("args", ["--dir=${HOME}"], ["--dir=${HOME}"]),
        ("command", "${HOME}/bin/server", "${env:HOME}/bin/server"),
        ("env", {"HOME_DIR": "$HOME"}, {"HOME_DIR": "${env:HOME}"}),
        ("headers", {"X-Home": "${HOME}"}, {"X-Home": "${env:HOME}"}),
    ],
)
def test_crush_reads_a_dollar_as_a_reference_only_where_it_expands_it(
    field: str, native: object, essence: object
) -> None:
    read = ideclients.CRUSH_SYNTAX.read({"transport": "stdio", field: native})
    assert read[field] == essence


# -- through the command line: the file, its mode, the plan note --------------------------


def _declare(workspace: Workspace, kind: str, path: Path, field: str) -> None:
    if field in ("url", "headers"):
        where = {
            "url": 'url: "https://mcp.example.com/${env:API_TOKEN}/mcp"',
            "headers": (
                "url: https://mcp.example.com/mcp\n"
                '    headers: {Authorization: "Bearer ${env:API_TOKEN}"}'
            ),
        }[field]
        server = f"transport: http\n    {where}"
    else:
        where = {
            "args": 'args: [-y, server-api, "--token=${env:API_TOKEN}"]',
            "env": 'args: [-y, server-api]\n    env: {API_TOKEN: "${env:API_TOKEN}"}',
            "command": 'command: "${env:API_TOKEN}"',
        }[field]
        server = where if field == "command" else f"command: npx\n    {where}"
    workspace.write("servers.yaml", f"servers:\n  api:\n    {server}\n")
    workspace.write("targets.yaml", f"targets:\n  client: {{kind: {kind}, path: {path}}}\n")


def _entry(path: Path) -> dict[str, object]:
    document = json.loads(path.read_text(encoding="utf-8"))
    servers = document["mcp"] if "mcp" in document else document["mcpServers"]
    entry: dict[str, object] = servers["api"]
    return entry


def _field(entry: dict[str, object], field: str) -> object:
    if field == "args":
        args = entry["args"]
        assert isinstance(args, list)
        return args[-1]
    value = entry[field]
    if isinstance(value, dict):
        return value["Authorization"] if field == "headers" else value["API_TOKEN"]
    return value


RESOLVED_CASES = [("crush", "url"), ("crush", "args"), ("kiro", "url"), ("kiro", "args")]
KEPT_CASES = [("crush", "env"), ("crush", "headers"), ("kiro", "env"), ("kiro", "headers")]


@pytest.mark.parametrize(("kind", "field"), RESOLVED_CASES)
def test_a_reference_where_the_kind_expands_none_is_resolved_with_the_note(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, kind: str, field: str
) -> None:
    monkeypatch.setenv("API_TOKEN", CANARY)
    path = workspace.home / f"{kind}.json"
    _declare(workspace, kind, path, field)
    pointer = "/url" if field == "url" else "/args/2"
    dry = workspace.run("--dry-run", "--json")
    [resolved] = dry.json["targets"][0]["resolved"]
    assert resolved == {
        "server": "api",
        "path": pointer,
        "references": ["${env:API_TOKEN}"],
        "why": f"{kind} expands no reference in {field}",
        "avoid": f"{kind} expands references only in command, env, headers: pass the secret "
        f"through one of those (as ${{env:API_TOKEN}}) instead of {field}",
    }
    run = workspace.run()
    assert run.exit_code == 0, run.stdout + run.stderr
    written = _field(_entry(path), field)
    assert isinstance(written, str) and CANARY in written and "API_TOKEN" not in written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for out in (dry.stdout, dry.stderr, run.stdout, run.stderr):
        assert CANARY not in out
    status = workspace.run("status")
    assert (
        f"resolved into client: api {pointer}: ${{env:API_TOKEN}} is resolved into the file "
        f"({kind} expands no reference in {field})"
    ) in status.stdout
    audit = workspace.run("audit", "--declared")
    assert f"client: api {pointer}: ${{env:API_TOKEN}} is resolved into the file" in audit.stdout
    assert "file mode checked: client 0600" in audit.stdout
    for out in (status.stdout, audit.stdout):
        assert CANARY not in out
    before = path.read_bytes(), path.stat().st_mtime_ns
    again = workspace.run()  # the resolved value compares equal: nothing to write
    assert again.exit_code == 0 and "0 changed" in again.stdout, again.stdout
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize(("kind", "field"), KEPT_CASES)
def test_a_reference_where_the_kind_expands_it_stays_a_reference(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, kind: str, field: str
) -> None:
    monkeypatch.setenv("API_TOKEN", CANARY)
    path = workspace.home / f"{kind}.json"
    _declare(workspace, kind, path, field)
    dry = workspace.run("--dry-run", "--json")
    assert dry.json["targets"][0]["resolved"] == []
    run = workspace.run()
    assert run.exit_code == 0, run.stdout + run.stderr
    expected = "Bearer ${API_TOKEN}" if field == "headers" else "${API_TOKEN}"
    assert _field(_entry(path), field) == expected
    assert CANARY not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("field", ["args", "url", "env", "headers"])
def test_crush_refuses_a_literal_dollar_with_its_own_reason(
    workspace: Workspace, field: str
) -> None:
    value = '"x$HOME"'
    server = {
        "args": f"command: npx\n    args: [-y, {value}]",
        "env": f"command: npx\n    env: {{DIR: {value}}}",
        "url": 'transport: http\n    url: "https://h.example/mcp?$filter=x"',
        "headers": "transport: http\n    url: https://h.example/mcp\n"
        f"    headers: {{X-Dir: {value}}}",
    }[field]
    workspace.write("servers.yaml", f"servers:\n  api:\n    {server}\n")
    path = workspace.home / "crush.json"
    workspace.write("targets.yaml", f"targets:\n  client: {{kind: crush, path: {path}}}\n")
    result = workspace.run("validate")
    assert result.exit_code == 2
    out = result.stdout + result.stderr
    assert f"servers.api.{field}" in out and "(crush): Crush runs shell expansion" in out
    assert "Gemini" not in out
    assert not path.exists()
