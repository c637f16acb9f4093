"""Ask the real MCP client CLIs which MCP servers they see, in a throw-away HOME.

Why: the reconciler's target adapters write config files for Claude Code, Codex, Gemini CLI and
opencode from documentation and reverse engineering. The only proof that a client reads what was
written is to run that client's own listing command on the file and compare. This module is the
harness for that: one function per client that runs the client's listing command against a given
HOME (and working directory, for project scopes) and returns what the client reports as plain
data (dicts, lists, strings), with no dependence on the product code in ``reconciler/``.

How the clients get here: ``.ci/install-clients`` installs them from the npm registry into
``.cache/npm``; :func:`client_binary` finds them there, and :func:`require_client` skips a test
with a visible reason when one is absent.

Hermetic by construction: every command runs with a *fresh* environment built by
:func:`client_env` (not the caller's environment plus overrides), so a developer's own
``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``, API keys or ``CI`` never change what a client reads, and
local runs behave like CI runs. HOME, the XDG directories and TMPDIR all point into the sandbox,
stdin is ``/dev/null`` (no prompt can block), and every call has a timeout.

What "listing" costs, per client (measured with the pinned versions in ``.ci/install-clients``):

* codex ``mcp list --json``: ~0.2 s; never spawns stdio servers, but for each streamable-HTTP
  server without ``bearer_token_env_var`` or headers it probes OAuth discovery (GET the URL,
  then ``/.well-known/oauth-protected-resource...``, ``oauth-authorization-server``,
  ``openid-configuration``) to fill ``auth_status``; ``codex mcp add --url`` does the same.
* claude ``mcp list`` / ``mcp get``: ~0.4 s plus a *health check* that spawns every approved
  stdio server's command and connects to every approved remote URL (no flag disables it). It is
  bounded by ``MCP_TIMEOUT`` (ms, default 30000 in Claude Code; :data:`CLAUDE_MCP_TIMEOUT_MS`
  here). Project servers not yet approved and servers disabled for the project are not contacted.
* gemini ``mcp list``: ~2 s of Node start-up (5 s on a loaded 2-core machine), plus a
  sequential health check per server (``timeout`` from the entry, default 5000 ms) when the
  folder is trusted.
* opencode ``debug config``: ~1.3-2 s; prints the resolved config and connects to nothing
  (``opencode mcp list`` would connect).

So tests must give stdio servers a command that does not exist (nothing is spawned, the check
fails at once) and remote servers a loopback URL (connection refused at once).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
NPM_PREFIX = REPO_ROOT / ".cache" / "npm"
NPM_BIN = NPM_PREFIX / "node_modules" / ".bin"

#: The clients ``.ci/install-clients`` installs, by binary name.
CLIENTS: tuple[str, ...] = ("claude", "codex", "gemini", "opencode")
#: The npm package of each client, for skip messages.
PACKAGES: dict[str, str] = {
    "claude": "@anthropic-ai/claude-code",
    "codex": "@openai/codex",
    "gemini": "@google/gemini-cli",
    "opencode": "opencode-ai",
}

#: Default seconds before a client command is killed. Gemini alone needs ~3 s to start.
DEFAULT_TIMEOUT = 90.0
#: Claude Code's health-check bound (env ``MCP_TIMEOUT``, ms). Loopback and missing commands
#: fail in well under a second; this only caps a server that hangs.
CLAUDE_MCP_TIMEOUT_MS = 3000

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ClientError(RuntimeError):
    """A client command exited non-zero; carries everything it printed."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"{' '.join(argv)} exited {returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        )


# --------------------------------------------------------------------------------------------
# Finding binaries and skipping


def client_binary(name: str) -> Path | None:
    """Path of the client's launcher under ``.cache/npm/node_modules/.bin``, or None.

    Only the repository-local install counts: a global ``claude`` on PATH is some other version
    whose behaviour the harness tests do not describe.
    """
    if name not in CLIENTS:
        raise ValueError(f"unknown client {name!r}; known: {', '.join(CLIENTS)}")
    path = NPM_BIN / name
    # .bin entries are symlinks; a dangling one (package half-removed) counts as absent.
    if path.exists() and os.access(path, os.X_OK):
        return path
    return None


def missing_reason(name: str) -> str | None:
    """Why the client cannot run here (for a skip message), or None when it is installed."""
    if client_binary(name) is not None:
        return None
    return (
        f"real client {name!r} ({PACKAGES[name]}) is not installed under "
        f"{NPM_BIN.relative_to(REPO_ROOT)}: run .ci/install-clients"
    )


def require_client(name: str) -> Path:
    """The client's binary, or skip the calling test with a visible reason."""
    import pytest  # Imported here so the module stays usable outside pytest.

    reason = missing_reason(name)
    if reason is not None:
        pytest.skip(reason)
    binary = client_binary(name)
    assert binary is not None
    return binary


# --------------------------------------------------------------------------------------------
# Running a client in a sandbox


def client_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A fresh environment that confines a client to ``home``.

    Built from scratch rather than copied from ``os.environ``: clients read dozens of variables
    (``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``, ``GEMINI_CLI_HOME``, ``OPENCODE_CONFIG``, API keys,
    ``CI``) and any one leaking in would make a test read the developer's real config. Only PATH
    (to find ``node`` for the JS launchers) is inherited.
    """
    home = Path(home)
    tmp = home / ".tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "USER": os.environ.get("USER", "tester"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # No colours, no TTY tricks: output is parsed.
        "TERM": "dumb",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
        # opencode writes its tmp dir under os.tmpdir(); keep even that in the sandbox.
        "TMPDIR": str(tmp),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        # Claude Code: no telemetry, update check or error reporting (no network here anyway;
        # without these it writes failed-telemetry files and wastes time on timeouts).
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "MCP_TIMEOUT": str(CLAUDE_MCP_TIMEOUT_MS),
        # Gemini CLI: machine-wide settings (/etc/gemini-cli/...) must not leak in.
        "GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(home / ".no-system-gemini" / "settings.json"),
        "GEMINI_CLI_SYSTEM_DEFAULTS_PATH": str(home / ".no-system-gemini" / "defaults.json"),
        # Gemini CLI re-executes itself in a child Node (for heap flags); skipping that saves
        # ~2-3 s per call and changes nothing about which files it reads.
        "GEMINI_CLI_NO_RELAUNCH": "true",
        # opencode: no self-update, no models catalogue download.
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
    }
    if extra:
        env.update(extra)
    return env


def run_client(
    name: str,
    args: Sequence[str],
    *,
    home: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``<client> <args>`` in the sandbox; raise :class:`ClientError` if it fails.

    ``cwd`` defaults to ``home`` (a directory with no project config). ``env`` is added on top
    of :func:`client_env`. stdin is /dev/null so an unexpected prompt fails instead of hanging.
    """
    binary = client_binary(name)
    if binary is None:
        raise FileNotFoundError(missing_reason(name))
    argv = [str(binary), *args]
    proc = subprocess.run(
        argv,
        cwd=str(cwd or home),
        env=client_env(home, env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise ClientError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def client_version(name: str, home: Path) -> str:
    """The client's own ``--version`` line (e.g. ``2.1.329 (Claude Code)``)."""
    env = {"CODEX_HOME": str(_codex_home(home, None))} if name == "codex" else None
    return run_client(name, ["--version"], home=home, env=env).stdout.strip()


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


# --------------------------------------------------------------------------------------------
# Codex


def _codex_home(home: Path, codex_home: Path | None) -> Path:
    path = Path(codex_home) if codex_home is not None else Path(home) / ".codex"
    # Codex warns "CODEX_HOME ... does not exist" and skips set-up when it is missing.
    path.mkdir(parents=True, exist_ok=True)
    return path


def codex_list(
    home: Path,
    *,
    cwd: Path | None = None,
    codex_home: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, dict[str, Any]]:
    """``codex mcp list --json`` -> ``{name: server}``, flattened.

    Files read (verified with codex-cli 0.169.0):

    * ``$CODEX_HOME/config.toml`` (``CODEX_HOME`` defaults to ``$HOME/.codex``), tables
      ``[mcp_servers.<name>]``; ``env`` as an inline table or ``[mcp_servers.<name>.env]``.
    * ``<cwd>/.codex/config.toml`` **only when** the project is trusted, i.e. the user file has
      ``[projects."<abs path>"] trust_level = "trusted"``; a same-name project entry replaces
      the user one. Untrusted, the project file is silently ignored.

    Each returned server has ``name``, ``enabled`` (``enabled = false`` in TOML),
    ``disabled_reason``, ``transport`` (``"stdio"`` or ``"streamable_http"``; there is no SSE,
    and a ``type = "sse"`` key is ignored: such an entry lists as streamable_http),
    ``startup_timeout_sec``, ``tool_timeout_sec``, ``auth_status``, and the transport's fields:
    stdio ``command``, ``args``, ``env`` (values in clear in the JSON), ``env_vars`` (names or
    ``{"name", "source"}`` objects), ``cwd``; http ``url``, ``bearer_token_env_var``,
    ``http_headers``, ``env_http_headers``, ``http_headers_helper``.

    Exit status 1 with "failed to load bootstrap configuration" on invalid TOML or an invalid
    entry (e.g. both ``command`` and ``url``): raised as :class:`ClientError`.
    """
    extra = {"CODEX_HOME": str(_codex_home(home, codex_home))}
    if env:
        extra.update(env)
    proc = run_client(
        "codex", ["mcp", "list", "--json"], home=home, cwd=cwd, env=extra, timeout=timeout
    )
    servers: dict[str, dict[str, Any]] = {}
    for item in json.loads(proc.stdout):
        flat = {k: v for k, v in item.items() if k != "transport"}
        transport = dict(item["transport"])
        flat["transport"] = transport.pop("type")
        flat.update(transport)
        servers[item["name"]] = flat
    return servers


# --------------------------------------------------------------------------------------------
# Claude Code

# How `claude mcp get` names each scope, mapped to the scope names of `-s/--scope`.
_CLAUDE_SCOPES = {
    "User config": "user",
    "Local config": "local",
    "Project config": "project",
    "Dynamic config": "dynamic",
    "Enterprise config": "enterprise",
    "Managed config": "managed",
}
# A `claude mcp list` line: "<name>: <target> - <status>", the status starting with a glyph.
_CLAUDE_LIST_LINE = re.compile(r"^(?P<name>[^\s:]+): (?P<target>.*?) - (?P<status>[^\w\s] .*)$")
_CLAUDE_REMOTE_TARGET = re.compile(r"^(?P<url>\S+) \((?P<type>[A-Z]+)\)$")


def _claude_env(config_dir: Path | None, env: Mapping[str, str] | None) -> dict[str, str] | None:
    extra: dict[str, str] = {}
    if config_dir is not None:
        extra["CLAUDE_CONFIG_DIR"] = str(config_dir)
    if env:
        extra.update(env)
    return extra or None


def parse_claude_list(text: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Parse ``claude mcp list`` output -> (``{name: {...}}``, diagnostics text).

    Each server: ``status`` (e.g. ``"✘ Failed to connect"``, ``"⏸ Pending approval (run
    `claude` to approve)"``, ``"⊘ Disabled for this project (re-enable via /mcp)"``,
    ``"✓ Connected"``), ``issue`` (text after the status's em dash, or None), ``transport``
    (``"stdio"``, ``"http"``, ``"sse"``, ``"ws"``), and ``url`` for remote servers or
    ``command_line`` (command and args joined by spaces, as printed) for stdio ones.
    The "MCP config diagnostics" block that follows (skipped entries, conflicting scopes, JSON
    errors, with the file's Location) is returned whole as the second item.
    """
    text = _strip_ansi(text)
    head, sep, diagnostics = text.partition("MCP config diagnostics")
    servers: dict[str, dict[str, Any]] = {}
    for line in head.splitlines():
        match = _CLAUDE_LIST_LINE.match(line.rstrip())
        if not match:
            continue
        status, _, issue = match["status"].partition(" \u2014 ")
        target = match["target"].strip()
        entry: dict[str, Any] = {"status": status, "issue": issue or None}
        remote = _CLAUDE_REMOTE_TARGET.match(target)
        if remote:
            entry.update(transport=remote["type"].lower(), url=remote["url"])
        else:
            entry.update(transport="stdio", command_line=target)
        servers[match["name"]] = entry
    return servers, (sep + diagnostics).strip()


def parse_claude_get(text: str) -> dict[str, Any]:
    """Parse ``claude mcp get NAME`` output into a dict.

    Keys: ``name``, ``scope`` (``user``/``local``/``project``/...), ``scope_text`` (as printed),
    ``status``, ``issue``, ``type`` (``stdio``/``http``/``sse``/``ws``); stdio: ``command``,
    ``args`` (**one string**: Claude prints the args joined by single spaces, so an arg with a
    space cannot be told apart), ``env`` (dict, values in clear and *unexpanded*, e.g.
    ``${TOKEN}``); remote: ``url`` (unexpanded), ``headers`` (dict, unexpanded), ``oauth``;
    ``timeout`` (e.g. ``"5000ms"``) when the entry has one.
    """
    result: dict[str, Any] = {}
    section: dict[str, str] | None = None
    separator = "="  # Environment lines are KEY=value, header lines are "Name: value".
    for line in _strip_ansi(text).splitlines():
        if not line.strip():
            section = None
            continue
        if not line.startswith(" ") and line.endswith(":") and "name" not in result:
            result["name"] = line[:-1]
            continue
        if line.startswith("    ") and section is not None:
            key, _, value = line.strip().partition(separator)
            section[key] = value
            continue
        if not line.startswith("  "):
            continue  # "To remove this server, run: ..." and the like
        key, _, value = line.strip().partition(":")
        value = value.strip()
        field = key.lower()
        if field == "environment":
            section, separator = result.setdefault("env", {}), "="
        elif field == "headers":
            section, separator = result.setdefault("headers", {}), ": "
        elif field == "scope":
            section = None
            result["scope_text"] = value
            label = value.split(" (")[0]
            result["scope"] = _CLAUDE_SCOPES.get(label, label.lower())
        else:
            section = None
            result[field] = value
    for optional in ("issue", "env", "headers"):
        result.setdefault(optional, None)
    return result


def claude_list(
    home: Path,
    cwd: Path,
    *,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[dict[str, dict[str, Any]], str]:
    """``claude mcp list`` run in ``cwd`` -> (servers, diagnostics), see :func:`parse_claude_list`.

    Files read (verified with Claude Code 2.1.329); ``CLAUDE_CONFIG_DIR`` (``config_dir``)
    replaces ``$HOME`` below, i.e. ``$CLAUDE_CONFIG_DIR/.claude.json``:

    * user scope: ``$HOME/.claude.json`` top-level ``mcpServers``;
    * local scope: ``$HOME/.claude.json`` ``projects["<abs path>"].mcpServers``, where the path
      is the git root containing ``cwd`` (or ``cwd`` itself outside git);
    * project scope: every ``.mcp.json`` from ``cwd`` upwards (top-level ``mcpServers``).
      Listed as pending and never contacted until approved: ``enableAllProjectMcpServers``
      in ``$HOME/.claude/settings.json`` approves all; ``enabledMcpjsonServers`` /
      ``disabledMcpjsonServers`` / ``enableAllProjectMcpServers`` in the project's
      ``.claude/settings.json`` or ``.claude/settings.local.json`` count only once
      ``projects["<path>"].hasTrustDialogAccepted`` is true. Rejected ones are not listed.
    * per-project off switch for any scope: ``projects["<path>"].disabledMcpServers`` (names);
      a ``"disabled": true`` key inside a server entry is ignored.

    Same name in several scopes: local wins over an *approved* project entry, which wins over
    user (a pending project entry does not shadow the user one); a "Conflicting scopes"
    diagnostic is printed. A remote entry without ``type`` is skipped with a diagnostic. A
    corrupt ``.claude.json`` makes the command exit 1 (raised); ``claude`` copies it to
    ``~/.claude/backups/.claude.json.corrupted.<ms>``.
    """
    proc = run_client(
        "claude",
        ["mcp", "list"],
        home=home,
        cwd=cwd,
        env=_claude_env(config_dir, env),
        timeout=timeout,
    )
    return parse_claude_list(proc.stdout + "\n" + proc.stderr)


def claude_get(
    home: Path,
    cwd: Path,
    name: str,
    *,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any] | None:
    """``claude mcp get NAME`` -> :func:`parse_claude_get`'s dict, or None if Claude has no such
    server (exit 1, "No MCP server named ..."). Reads the same files as :func:`claude_list`;
    unlike the list, it also shows rejected project servers (status "✘ Rejected ...")."""
    proc = run_client(
        "claude",
        ["mcp", "get", name],
        home=home,
        cwd=cwd,
        env=_claude_env(config_dir, env),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        if "No MCP server named" in proc.stdout + proc.stderr:
            return None
        raise ClientError(["claude", "mcp", "get", name], proc.returncode, proc.stdout, proc.stderr)
    return parse_claude_get(proc.stdout)


def claude_servers(
    home: Path,
    cwd: Path,
    *,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, dict[str, Any]]:
    """Every server ``claude mcp list`` shows, each detailed by ``claude mcp get``.

    ``{name: get-dict + {"list_status": ...}}``: scope, type, command, args, env, url, headers,
    as Claude Code prints them (see :func:`parse_claude_get`). Each ``get`` repeats the health
    check for that server, so this costs one list plus one get per server.
    """
    listed, _ = claude_list(home, cwd, config_dir=config_dir, env=env, timeout=timeout)
    result: dict[str, dict[str, Any]] = {}
    for name, entry in listed.items():
        details = claude_get(home, cwd, name, config_dir=config_dir, env=env, timeout=timeout)
        if details is None:
            continue  # removed between the two calls; nothing to report
        details["list_status"] = entry["status"]
        result[name] = details
    return result


# --------------------------------------------------------------------------------------------
# Gemini CLI

# "<glyph> <name>[ (from <ext>)]: <target> (<transport>) - <Status>"
_GEMINI_LINE = re.compile(
    r"^(?P<glyph>\S+) (?P<name>[^:]+?)(?: \(from (?P<ext>[^)]*)\))?: (?P<target>.*) "
    r"\((?P<transport>stdio|http|sse)\) - (?P<status>Connected|Connecting|Blocked|Disabled"
    r"|Disconnected)$"
)


def parse_gemini_list(text: str) -> tuple[dict[str, dict[str, Any]], bool]:
    """Parse ``gemini mcp list`` output -> (``{name: {...}}``, folder_trusted).

    Each server: ``transport`` (``stdio``/``http``/``sse``), ``status`` (``Connected``,
    ``Disconnected``, ``Disabled``, ``Blocked``, ``Connecting``), ``extension`` (or None), and
    ``url`` for remote servers or ``command`` + ``args`` (one string, joined by spaces as
    printed) for stdio ones. folder_trusted is False when Gemini printed its "this folder is
    untrusted" warning (every server is then ``Disabled`` and nothing is contacted).
    """
    text = _strip_ansi(text)
    servers: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        match = _GEMINI_LINE.match(line.rstrip())
        if not match:
            continue
        entry: dict[str, Any] = {
            "transport": match["transport"],
            "status": match["status"],
            "extension": match["ext"],
        }
        target = match["target"]
        if match["transport"] == "stdio":
            command, _, args = target.partition(" ")
            entry.update(command=command, args=args.strip())
        else:
            entry["url"] = target
        servers[match["name"]] = entry
    return servers, "folder is untrusted" not in text


def gemini_trust_folder(home: Path, folder: Path, level: str = "TRUST_FOLDER") -> Path:
    """Trust ``folder`` the way Gemini CLI's trust dialog does, and return the file written.

    ``$HOME/.gemini/trustedFolders.json`` maps absolute paths to ``TRUST_FOLDER``,
    ``TRUST_PARENT`` (trusts the rule path's parent and below) or ``DO_NOT_TRUST``; the longest
    matching rule wins. Existing rules are kept.
    """
    path = Path(home) / ".gemini" / "trustedFolders.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rules: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    rules[str(Path(folder).resolve())] = level
    path.write_text(json.dumps(rules, indent=2) + "\n")
    return path


def gemini_list(
    home: Path,
    cwd: Path,
    *,
    trusted: bool | None = True,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[dict[str, dict[str, Any]], bool]:
    """``gemini mcp list`` run in ``cwd`` -> (servers, folder_trusted); see
    :func:`parse_gemini_list` for each server's keys.

    Files read (verified with Gemini CLI 0.61.0): ``$HOME/.gemini/settings.json`` (user; also
    ``GEMINI_CLI_HOME`` instead of ``$HOME``) and ``<cwd>/.gemini/settings.json`` (project;
    only in ``cwd`` itself, no walk up to the git root), both top-level ``mcpServers``, JSON
    with comments allowed. Project wins on a name clash. ``$VAR`` and ``${VAR}`` are expanded
    in every string (the listing shows expanded values).
    Off switches: ``$HOME/.gemini/mcp-server-enablement.json`` ``{"<name>": {"enabled":
    false}}`` -> ``Disabled``; ``"mcp": {"excluded": [names]}`` in settings -> ``Blocked``.

    Trust: folder trust is *on* by default in 0.61.0 (the docs say off); an untrusted folder
    lists every server (user ones too) as ``Disabled`` and contacts none of them.
    ``trusted=True`` sets ``GEMINI_CLI_TRUST_WORKSPACE=true`` (documented env var; no file
    written), ``False`` sets it to ``false``, ``None`` leaves the decision to
    ``trustedFolders.json`` (see :func:`gemini_trust_folder`) and
    ``security.folderTrust.enabled`` in settings. No auth is needed to list: no prompt.

    Gemini writes the listing to **stderr**; both streams are parsed.
    """
    extra: dict[str, str] = {}
    if trusted is not None:
        extra["GEMINI_CLI_TRUST_WORKSPACE"] = "true" if trusted else "false"
    if env:
        extra.update(env)
    proc = run_client("gemini", ["mcp", "list"], home=home, cwd=cwd, env=extra, timeout=timeout)
    return parse_gemini_list(proc.stdout + "\n" + proc.stderr)


# --------------------------------------------------------------------------------------------
# opencode


def opencode_config(
    home: Path,
    cwd: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """``opencode debug config --pure`` -> the whole resolved config as parsed JSON.

    ``--pure`` keeps external plugins (which opencode may fetch and run) out; config resolution
    is unchanged. Raises :class:`ClientError` on a config opencode rejects (it prints
    "Configuration is invalid at <file>" with the failing path).
    """
    proc = run_client(
        "opencode", ["debug", "config", "--pure"], home=home, cwd=cwd, env=env, timeout=timeout
    )
    config: dict[str, Any] = json.loads(proc.stdout)
    return config


def opencode_mcp(
    home: Path,
    cwd: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, dict[str, Any]]:
    """The resolved ``mcp`` section of :func:`opencode_config` (``{}`` when there is none).

    Files read, merged in this order, later wins per server name (verified with opencode
    1.18.33, from its ``--print-logs`` "loading path=" lines):
    ``$XDG_CONFIG_HOME/opencode/config.json``, ``.../opencode.json``, ``.../opencode.jsonc``
    (``XDG_CONFIG_HOME`` defaults to ``$HOME/.config``), then the project's ``opencode.json``
    / ``opencode.jsonc`` found from ``cwd`` upwards (to the git root, or to ``/`` outside git),
    then ``<project>/.opencode/opencode.json(c)``. JSONC (comments, trailing commas) is
    accepted everywhere. ``.agents/mcp.json``, ``~/.agents/mcp.json``, ``.mcp.json`` and
    ``~/.claude.json`` are *not* read by this version.

    Entry shapes: ``{"type": "local", "command": [cmd, *args], "environment": {...},
    "enabled": bool, "timeout": ms}`` and ``{"type": "remote", "url": ..., "headers": {...},
    "oauth": false | {...}, "enabled": bool, "timeout": ms}``; any other ``type`` is an error.
    ``{env:VAR}`` is already substituted here.

    Redaction by ``debug config``: every string under a ``headers`` key becomes ``"***"``, and
    so does any value whose key matches ``api.?key|secret|password|token$|authorization$|
    cookie$|credential|private.?key`` (e.g. an ``environment`` entry ``API_KEY``) and any URL
    with user info or a secret-looking query parameter. Header *names* survive.

    Side effects of running opencode: it creates ``$XDG_CONFIG_HOME/opencode/opencode.jsonc``
    when no global config exists, and inserts ``"$schema"`` into a config file lacking it.
    """
    mcp: dict[str, dict[str, Any]] = opencode_config(home, cwd, env=env, timeout=timeout).get(
        "mcp", {}
    )
    return mcp


# --------------------------------------------------------------------------------------------
# Continue (its config parser: the CLI has no offline listing command)

#: Continue's own config library, the one its CLI (``@continuedev/cli``) and IDE extensions
#: parse ``config.yaml`` and block files with; ``.ci/install-clients continue`` installs it.
CONTINUE_PARSER = NPM_PREFIX / "node_modules" / "@continuedev" / "config-yaml"

_CONTINUE_SCRIPT = """
const parser = require(process.argv[1]);
const text = require("fs").readFileSync(process.argv[2], "utf8");
process.stdout.write(JSON.stringify(parser.parseConfigYaml(text)));
"""


def require_continue_parser() -> Path:
    """The parser's folder, or skip the calling test with a visible reason."""
    import pytest

    if not (CONTINUE_PARSER / "package.json").is_file():
        pytest.skip(
            "Continue's config parser (@continuedev/config-yaml) is not installed under "
            f"{CONTINUE_PARSER.parent.relative_to(REPO_ROOT)}: run .ci/install-clients continue"
        )
    return CONTINUE_PARSER


def continue_config(home: Path, path: Path, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """``parseConfigYaml`` of Continue's library on ``path``: the config as Continue reads it.

    It validates with Continue's zod schema (``packages/config-yaml``): an entry Continue would
    refuse (a wrong type, a missing ``name``) raises :class:`ClientError` with its message.
    ``${{ secrets.NAME }}`` templates are kept as written (they are filled when the config is
    unrolled, from Continue's secret store).
    """
    argv = ["node", "-e", _CONTINUE_SCRIPT, str(CONTINUE_PARSER), str(path)]
    proc = subprocess.run(
        argv,
        cwd=str(home),
        env=client_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise ClientError(argv, proc.returncode, proc.stdout, proc.stderr)
    config: dict[str, Any] = json.loads(proc.stdout)
    return config
