"""Property tests (docs/RELIABILITY.md), with hypothesis: over random desired states and
random client files of JSON, JSONC, TOML and opencode's format,

- normalizing an essence is idempotent;
- an essence rendered for a client kind and parsed back is the essence;
- a pass that applies, then a dry run: the dry run plans nothing (apply then observe gives
  zero drift, and the plan for observed == desired is empty);
- every key we do not manage, every unmanaged server and every comment survive the pass.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler import targets
from reconciler.core.errors import DesiredStateError
from reconciler.core.essence import mask, normalize
from reconciler.core.model import TargetSpec
from reconciler.engine import Engine, PassOptions
from reconciler.targets import Context, jsonc

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

# No "$" (a reference), no surrogates (no UTF-8 text holds them), no control characters.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="$"),
    max_size=10,
)
NAME = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)
ENV_NAME = st.from_regex(r"[A-Z][A-Z0-9]{0,5}", fullmatch=True)
SERVER = st.fixed_dictionaries(
    {
        "command": st.from_regex(r"[a-z][a-z0-9./-]{0,10}", fullmatch=True),
        "args": st.lists(TEXT, max_size=4),
        "env": st.dictionaries(ENV_NAME, TEXT, max_size=3),
    }
)
SERVERS = st.dictionaries(NAME.filter(lambda n: n != "mine"), SERVER, min_size=1, max_size=4)
FOREIGN_KEY = st.from_regex(r"[a-z][a-zA-Z]{0,8}", fullmatch=True)
FOREIGN = st.dictionaries(
    FOREIGN_KEY.filter(lambda k: k not in ("mcpServers", "servers", "mcp", "mcp_servers")),
    st.one_of(st.integers(-1000, 1000), TEXT, st.booleans()),
    max_size=4,
)

MINE = {"command": "mine", "args": ["--keep"]}
COMMENT = "keep this comment"

# kind -> (file name, server section, how a file with foreign keys is written)
KINDS: dict[str, tuple[str, str]] = {
    "claude-desktop": ("claude.json", "mcpServers"),
    "vscode": ("mcp.json", "servers"),
    "opencode": ("opencode.json", "mcp"),
    "codex": ("config.toml", "mcp_servers"),
}


def client_file(kind: str, foreign: dict[str, Any]) -> str:
    section = KINDS[kind][1]
    if kind == "codex":
        lines = [f"# {COMMENT}"]
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in foreign.items()]
        lines += ["", f"[{section}.mine]", 'command = "mine"', 'args = ["--keep"]', ""]
        return "\n".join(lines)
    mine: dict[str, Any] = dict(MINE)
    if kind == "opencode":
        mine = {"type": "local", "command": ["mine", "--keep"]}
    body = json.dumps({**foreign, section: {"mine": mine}}, indent=2, ensure_ascii=False)
    if kind == "claude-desktop":
        return body + "\n"  # strict JSON: no comment
    return body.replace("{\n", f"{{\n  // {COMMENT}\n", 1) + "\n"


def parse(kind: str, text: str) -> dict[str, Any]:
    if kind == "codex":
        return tomllib.loads(text)
    value: dict[str, Any] = jsonc.parse(text).value
    return value


def desired(servers: dict[str, Any], kind: str, path: Path) -> str:
    # JSON is YAML: every value is written as a JSON flow scalar.
    spec = f"{{kind: {kind}, path: {json.dumps(str(path))}, secrets: resolve, prune: true}}"
    return f"servers: {json.dumps(servers, ensure_ascii=False)}\ntargets:\n  t: {spec}\n"


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(servers=SERVERS, foreign=FOREIGN, later=SERVERS)
def test_apply_then_dry_run_is_a_no_op_and_foreign_content_survives(
    kind: str, servers: dict[str, Any], foreign: dict[str, Any], later: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        client = base / "home" / KINDS[kind][0]
        client.parent.mkdir(parents=True)
        original = client_file(kind, foreign)
        client.write_text(original, encoding="utf-8")
        (base / "desired").mkdir()
        engine = Engine(base / "desired", base / "state", home=base / "home", environ={})
        for wanted in (servers, later):  # a first desired state, then another one
            (base / "desired" / "a.yaml").write_text(desired(wanted, kind, client), "utf-8")
            try:
                applied = engine.run(PassOptions())
            except DesiredStateError as e:  # e.g. a random value that looks like a secret
                assume(False)
                raise AssertionError from e
            assert applied.exit_code == 0, applied.to_json()
            dry = engine.run(PassOptions(dry_run=True))
            assert dry.exit_code == 0 and not any(t.changes for t in dry.targets), dry.to_json()

            text = client.read_text(encoding="utf-8")
            document = parse(kind, text)
            assert {k: document.get(k) for k in foreign} == foreign
            section = document[KINDS[kind][1]]
            assert set(section) == {"mine", *wanted}  # pruned what it created, kept "mine"
            assert parse(kind, original)[KINDS[kind][1]]["mine"] == section["mine"]
            if kind != "claude-desktop":
                assert COMMENT in text


ESSENCE = st.fixed_dictionaries(
    {"transport": st.sampled_from(["stdio", None]), "command": st.just("x")},
    optional={
        "args": st.lists(TEXT, max_size=3),
        "env": st.dictionaries(ENV_NAME, TEXT, max_size=3),
        "cwd": st.one_of(st.just(""), TEXT),
        "enabled": st.booleans(),
    },
)


@given(raw=ESSENCE)
@settings(max_examples=200, deadline=None)
def test_normalizing_an_essence_is_idempotent(raw: dict[str, Any]) -> None:
    once = normalize(raw)
    assert normalize(once) == once


@pytest.mark.parametrize("kind", ["claude-desktop", "cursor", "vscode", "gemini", "opencode"])
@given(server=SERVER)
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_an_essence_rendered_for_a_client_and_parsed_back_is_the_essence(
    kind: str, server: dict[str, Any], tmp_path: Path
) -> None:
    target: Any = targets.build(
        "t",
        TargetSpec(kind=kind, path=str(tmp_path / "c.json")),
        Context(home=tmp_path, platform="linux", root=tmp_path, lock_dir=None),
    )
    # As the planner renders it: the capability mask keeps only what the client can hold.
    essence = mask(normalize({"transport": "stdio", "enabled": True, **server}), target.capability)
    native = target.to_native(essence, None)
    assert target.to_essence("s", json.loads(json.dumps(native))) == essence
