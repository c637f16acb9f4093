"""Secrets, unit level: reference parsing, resolution, rendering per kind, detection, redaction."""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.core.errors import DesiredStateError
from reconciler.core.essence import display, fingerprint_with, seal
from reconciler.core.model import Resolver
from reconciler.engine import load_desired
from reconciler.secrets import (
    RedactingFilter,
    RedactingStream,
    Redactor,
    SecretError,
    SecretResolver,
    canonical_env,
    detect,
    find_references,
    looks_random,
    referable,
    reference_mode,
    reference_problem,
    render_essence,
    scan_essence,
    seal_paths,
)
from reconciler.targets import CAPABILITIES

FP = fingerprint_with(b"k" * 32)

# Token-shaped values built at run time, so no literal token sits in this file.
GHP = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" + "abcdefghijKLMNOPQRSTuv_0123456789"
OPENAI = "sk-" + "proj-" + "Ab12Cd34Ef56Gh78Ij90Kl12"
ANTHROPIC = "sk-ant-" + "api03-" + "Xy12Zw34Vu56Ts78Rq90Po12"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOp"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITLAB = "glpat-" + "Ab12Cd34Ef56Gh78Ij90"
JWT = "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" + "." + "dozjgNryP4J3jVmNHl0w5N"
RANDOM = "q8Z2xR7vL0mN4bT9wK3s"


def resolver(tmp_path: Path, environ: dict[str, str] | None = None, **resolvers: Resolver):
    return SecretResolver(
        resolvers,
        environ or {},
        root=tmp_path,
        home=tmp_path / "home",
        redactor=Redactor(FP),
    )


# -- references ---------------------------------------------------------------------------


def test_every_reference_form_is_found_in_order() -> None:
    text = "a ${env:A} b ${B} c ${file:/x/y} d ${infisical:C} e <GET_FROM_INFISICAL:D> ${vault:E}"
    refs = find_references(text)
    assert [(r.scheme, r.name) for r in refs] == [
        ("env", "A"),
        ("env", "B"),
        ("file", "/x/y"),
        ("infisical", "C"),
        ("infisical", "D"),
        ("vault", "E"),
    ]
    assert [r.canonical for r in refs][:2] == ["${env:A}", "${env:B}"]
    assert refs[4].text == "<GET_FROM_INFISICAL:D>"
    assert text[refs[2].start : refs[2].end] == "${file:/x/y}"


def test_plain_text_has_no_references() -> None:
    for text in ("UTC", "$HOME/x", "{env:X}", "${", "price: $5", "<GET_FROM_VAULT:X>"):
        assert find_references(text) == []


def test_plain_name_is_normalized_to_the_env_form() -> None:
    assert canonical_env("Bearer ${TOKEN}") == "Bearer ${env:TOKEN}"
    assert canonical_env("${env:A}-${file:x}") == "${env:A}-${file:x}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("${env:GOOD_1}", None),
        ("${file:secrets/x}", None),
        ("${vault:db/pass}", None),
        ("${env:1BAD}", "not an environment variable name"),
        ("${A B}", "not an environment variable name"),
        ("${NAME:-default}", "defaults"),
        ("${nope:X}", "no resolver 'nope'"),
        ("${vault:}", "names nothing"),
        ("<GET_FROM_INFISICAL:X>", "no resolver 'infisical'"),
    ],
)
def test_reference_problems(text: str, problem: str | None) -> None:
    (ref,) = find_references(text)
    why = reference_problem(ref, ["vault"])
    if problem is None:
        assert why is None
    else:
        assert why is not None and problem in why[0]


# -- resolution ---------------------------------------------------------------------------


def test_env_reference_resolves_and_is_registered(tmp_path: Path) -> None:
    r = resolver(tmp_path, {"TOKEN": "s3cr3t-value"})
    assert r.resolve_text("Bearer ${env:TOKEN}") == "Bearer s3cr3t-value"
    assert r.resolve_text("${TOKEN}") == "s3cr3t-value"
    assert "s3cr3t-value" in r.redactor


@pytest.mark.parametrize(("environ", "why"), [({}, "is not set"), ({"TOKEN": ""}, "is empty")])
def test_missing_or_empty_env_fails(tmp_path: Path, environ: dict[str, str], why: str) -> None:
    with pytest.raises(SecretError, match=why) as caught:
        resolver(tmp_path, environ).resolve_text("${env:TOKEN}")
    assert caught.value.recoverable is False


def test_file_reference_relative_absolute_and_home(tmp_path: Path) -> None:
    (tmp_path / "rel.txt").write_text("relative-secret\n")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "h.txt").write_text("home-secret\r\n")
    absolute = tmp_path / "abs.txt"
    absolute.write_text("absolute-secret")
    r = resolver(tmp_path)
    assert r.resolve_text("${file:rel.txt}") == "relative-secret"  # one newline stripped
    assert r.resolve_text("${file:~/h.txt}") == "home-secret"
    assert r.resolve_text(f"${{file:{absolute}}}") == "absolute-secret"


def test_missing_and_empty_files_fail(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    r = resolver(tmp_path)
    with pytest.raises(SecretError, match="does not exist"):
        r.resolve_text("${file:nope}")
    with pytest.raises(SecretError, match="is empty"):
        r.resolve_text("${file:empty}")


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_resolver_command_runs_without_a_shell_once_per_name(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    get = script(
        tmp_path,
        "get.py",
        f"""
        import sys
        with open({str(counter)!r}, "a") as f:
            f.write(sys.argv[1] + "\\n")
        print("value-of-" + sys.argv[1])
        """,
    )
    r = resolver(tmp_path, vault=Resolver(command=(sys.executable, get, "{name}")))
    tricky = "a;echo pwned $(id)"
    assert r.resolve_text("${vault:" + tricky + "}") == "value-of-" + tricky
    assert r.resolve_text("<x> ${vault:" + tricky + "} <y>") == "<x> value-of-" + tricky + " <y>"
    assert counter.read_text().splitlines() == [tricky]  # cached, and no shell ran it


def test_legacy_infisical_form_uses_the_infisical_resolver(tmp_path: Path) -> None:
    get = script(tmp_path, "inf.py", "import sys; print('inf-' + sys.argv[1])")
    r = resolver(tmp_path, infisical=Resolver(command=(sys.executable, get, "{name}")))
    assert r.resolve_text("<GET_FROM_INFISICAL:GH_PAT>") == "inf-GH_PAT"


def test_failing_resolver_never_shows_its_stderr(tmp_path: Path) -> None:
    get = script(
        tmp_path,
        "fail.py",
        """
        import sys
        sys.stderr.write("the value is hunter2-leaked\\n")
        sys.stdout.write("partial-hunter2\\n")
        sys.exit(4)
        """,
    )
    r = resolver(tmp_path, vault=Resolver(command=(sys.executable, get, "{name}")))
    with pytest.raises(SecretError) as caught:
        r.resolve_text("${vault:X}")
    assert "exit status 4" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert caught.value.recoverable is True


def test_resolver_timeout(tmp_path: Path) -> None:
    get = script(tmp_path, "hang.py", "import threading; threading.Event().wait()")
    r = resolver(tmp_path, vault=Resolver(command=(sys.executable, get, "{name}"), timeout=0.3))
    with pytest.raises(SecretError, match=r"timed out after 0\.3 s"):
        r.resolve_text("${vault:X}")


def test_resolver_missing_command_and_empty_output(tmp_path: Path) -> None:
    empty = script(tmp_path, "empty.py", "print()")
    r = resolver(
        tmp_path,
        gone=Resolver(command=(str(tmp_path / "no-such-tool"), "{name}")),
        empty=Resolver(command=(sys.executable, empty, "{name}")),
    )
    with pytest.raises(SecretError, match="not found"):
        r.resolve_text("${gone:X}")
    with pytest.raises(SecretError, match="empty value"):
        r.resolve_text("${empty:X}")


# -- rendering per kind -------------------------------------------------------------------


def essence() -> dict[str, object]:
    return {
        "transport": "stdio",
        "command": "npx",
        "args": ["-y", "srv", "--token=${env:TOKEN}", "${HOME}/data"],
        "env": {"TOKEN": "${TOKEN}", "GH": "${env:GITHUB_PAT}", "KEY": "${file:key.txt}"},
    }


@pytest.fixture
def filled(tmp_path: Path) -> SecretResolver:
    (tmp_path / "key.txt").write_text("file-value-123\n")
    return resolver(tmp_path, {"TOKEN": "tok-value-1", "GITHUB_PAT": "pat-value-2", "HOME": "/h"})


def test_referencing_client_keeps_env_references_and_resolves_the_rest(
    filled: SecretResolver,
) -> None:
    done = render_essence(
        essence(),
        filled,
        capability=CAPABILITIES["claude-code"],
        kind="claude-code",
        keep_env=True,
        server="s",
    )
    assert done.essence["args"] == ["-y", "srv", "--token=${env:TOKEN}", "${env:HOME}/data"]
    assert done.essence["env"] == {
        "TOKEN": "${env:TOKEN}",
        "GH": "${env:GITHUB_PAT}",
        "KEY": "file-value-123",
    }
    assert done.sensitive and done.secret_paths == {"/env/KEY"}
    assert done.notes == ()


def test_only_env_references_means_nothing_sensitive(filled: SecretResolver) -> None:
    plain = {"transport": "http", "url": "https://x/mcp", "headers": {"A": "Bearer ${T}"}}
    done = render_essence(
        plain,
        filled,
        capability=CAPABILITIES["opencode"],
        kind="opencode",
        keep_env=True,
    )
    assert done.essence["headers"] == {"A": "Bearer ${env:T}"}  # T need not be set here
    assert not done.sensitive


def test_resolving_client_gets_values_and_secret_paths(filled: SecretResolver) -> None:
    done = render_essence(
        essence(),
        filled,
        capability=CAPABILITIES["claude-desktop"],
        kind="claude-desktop",
        keep_env=False,
    )
    assert done.essence["args"] == ["-y", "srv", "--token=tok-value-1", "/h/data"]
    assert done.essence["env"]["GH"] == "pat-value-2"
    assert done.sensitive
    # HOME locates, it does not authenticate: not a secret path.
    assert done.secret_paths == {"/args/2", "/env/TOKEN", "/env/GH", "/env/KEY"}


def test_codex_keeps_only_what_it_can_pass_by_name(filled: SecretResolver) -> None:
    done = render_essence(
        essence(),
        filled,
        capability=CAPABILITIES["codex"],
        kind="codex",
        keep_env=True,
        server="s",
    )
    assert done.essence["env"]["TOKEN"] == "${env:TOKEN}"  # env_vars = ["TOKEN"]
    assert done.essence["env"]["GH"] == "pat-value-2"  # GH != GITHUB_PAT: resolved
    assert done.essence["args"][2] == "--token=tok-value-1"
    assert any("/env/GH" in n and "resolved" in n for n in done.notes)
    assert any("/args/2" in n for n in done.notes)
    remote = {"transport": "http", "url": "https://x", "headers": {"Authorization": "Bearer ${T}"}}
    kept = render_essence(
        remote, filled, capability=CAPABILITIES["codex"], kind="codex", keep_env=True
    )
    assert kept.essence["headers"] == {"Authorization": "Bearer ${env:T}"}  # bearer_token_env_var
    assert not kept.sensitive


def test_referable_rules() -> None:
    assert referable(CAPABILITIES["gemini"], "args", None, "${env:X}")
    assert not referable(CAPABILITIES["claude-desktop"], "env", "X", "${env:X}")
    assert not referable(CAPABILITIES["mcpjungle"], "env", "X", "${env:X}")
    assert referable(CAPABILITIES["codex"], "headers", "X-Key", "${env:K}")  # env_http_headers
    assert not referable(CAPABILITIES["codex"], "headers", "X-Key", "key ${env:K}")
    assert not referable(CAPABILITIES["codex"], "url", None, "https://${env:H}/")


def test_reference_mode_follows_kind_and_option() -> None:
    assert reference_mode(CAPABILITIES["claude-code"], None)
    assert not reference_mode(CAPABILITIES["claude-code"], "resolve")
    assert not reference_mode(CAPABILITIES["claude-desktop"], None)
    assert not reference_mode(CAPABILITIES["mcpjungle"], None)


def test_unresolvable_references_name_them_all_and_no_value(tmp_path: Path) -> None:
    r = resolver(tmp_path, {"PRESENT": "present-value-9"})
    bad = {"transport": "stdio", "command": "x", "env": {"A": "${A}", "B": "${file:none}"}}
    bad["env"]["C"] = "${PRESENT}"
    with pytest.raises(SecretError) as caught:
        render_essence(
            bad,
            r,
            capability=CAPABILITIES["claude-desktop"],
            kind="claude-desktop",
            keep_env=False,
            server="api",
        )
    message = str(caught.value)
    assert "${env:A}" in message and "${file:none}" in message and "server 'api'" in message
    assert "present-value-9" not in message and "nothing is written" in message


def test_seal_paths_covers_args_and_url() -> None:
    e = {"transport": "stdio", "command": "x", "args": ["a", "tok"], "env": {"K": "v"}}
    sealed = seal_paths(seal(e, FP), {"/args/1", "/env/K", "/args/9"}, FP)
    assert sealed["args"] == ["a", FP("tok")]
    assert sealed["env"] == {"K": FP("v")}
    assert e["args"] == ["a", "tok"]  # the input is not touched
    assert seal_paths({"url": "https://u"}, {"/url"}, FP) == {"url": FP("https://u")}


# -- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (GHP, "github-token"),
        (GITHUB_PAT, "github-token"),
        (OPENAI, "openai-key"),
        (ANTHROPIC, "anthropic-key"),
        (SLACK, "slack-token"),
        (AWS, "aws-access-key"),
        (GITLAB, "gitlab-token"),
        (JWT, "jwt"),
        ("Bearer abcdef0123456789", "bearer-token"),
        ("https://user:pa55word@db.example.com/x", "url-password"),
        ("postgres://app:Zx9-secret@localhost:5432/db", "url-password"),
        ("-----BEGIN RSA PRIVATE KEY-----", "private-key"),
    ],
)
def test_known_token_shapes(value: str, kind: str) -> None:
    assert detect(value) == kind
    assert detect(f"prefix {value} suffix") == kind


@pytest.mark.parametrize(
    "value",
    [
        "Bearer ${env:TOKEN}",
        "Bearer ${TOKEN}",
        "https://user:${env:DB_PASS}@db/x",
        "<GET_FROM_INFISICAL:GH_PAT>",
        "https://user@example.com/x",
        "https://example.com/mcp?x=1",
        "https://user:***@db/x",
    ],
)
def test_references_and_clean_urls_are_not_secrets(value: str) -> None:
    assert detect(value, "Authorization") is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("API_TOKEN", RANDOM),
        ("DB_PASSWORD", "Xk3-9fQ_zP2m!vL7"),
        ("Authorization", "token " + RANDOM),
        ("X-Api-Key", "a3f9c2e8b1d74f60a9e5c3b2d1f0e8a7"),
        ("client_secret", "9d8F7g6H5j4K3l2Z1x0C"),
    ],
)
def test_random_values_under_secret_like_keys(key: str, value: str) -> None:
    assert detect(value, key) == "high-entropy"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TZ", "UTC"),
        ("API_TOKEN", "short1"),
        ("SSH_KEY_PATH", "/home/me/.ssh/id_ed25519"),
        ("KEY_FILE", "C:\\Users\\me\\key.pem"),
        ("TOKEN_URL", "https://auth.example.com/oauth/token"),
        ("SECRET_NAME", "my-app-production-secret-v2"),
        ("MAX_TOKENS", "4096"),
        ("API_KEY_HEADER", "X-Api-Key"),
        ("PRIMARY_KEY", "customer_id"),
        ("AUTH_MODE", "oauth2-client-credentials"),
        ("KEYBOARD", "us-intl-altgr-dead-keys"),
        ("PASSWORD", "${env:DB_PASSWORD}"),
        ("HOME", RANDOM),  # random, but not under a secret-like key
        (None, RANDOM),
    ],
)
def test_no_false_positives_on_ordinary_values(key: str | None, value: str) -> None:
    assert detect(value, key) is None


def test_ordinary_server_entries_are_clean() -> None:
    for e in (
        {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=UTC"]},
        {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "~/src"]},
        {"url": "https://api.githubcopilot.com/mcp/", "headers": {"X-Team": "platform"}},
        {"command": "docker", "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"]},
    ):
        assert scan_essence(e, Redactor(FP)) == []


def test_scan_essence_finds_fields_and_argument_names() -> None:
    e = {
        "command": "srv",
        "args": ["--api-key", RANDOM, "--token=" + RANDOM, "--name", "plain-name-value-xx", GHP],
        "env": {"GITHUB_TOKEN": GHP, "TZ": "UTC"},
        "headers": {"Authorization": "Bearer literal0123456789"},
        "url": "https://u:pw-Zx81q@h/",
    }
    found = {(f.path, f.kind) for f in scan_essence(e, Redactor(FP))}
    assert found == {
        ("/args/1", "high-entropy"),
        ("/args/2", "high-entropy"),
        ("/args/5", "github-token"),
        ("/env/GITHUB_TOKEN", "github-token"),
        ("/headers/Authorization", "bearer-token"),
        ("/url", "url-password"),
    }
    sealed = scan_essence(seal(e, FP), Redactor(FP))  # env and headers sealed: skipped
    assert {f.path.split("/")[1] for f in sealed} == {"args", "url"}


def test_looks_random_thresholds() -> None:
    assert looks_random(RANDOM)
    assert not looks_random("aaaaaaaaaaaaaaaaaaaa1")  # long but not random
    assert not looks_random("abcdefghijklmnopqrst")  # one character class


# -- desired state validation -------------------------------------------------------------


def load(tmp_path: Path, text: str) -> DesiredStateError:
    root = tmp_path / "desired"
    root.mkdir(exist_ok=True)
    (root / "s.yaml").write_text(textwrap.dedent(text).lstrip())
    with pytest.raises(DesiredStateError) as caught:
        load_desired(root)
    return caught.value


def test_literal_secret_in_desired_state_is_located_and_not_shown(tmp_path: Path) -> None:
    error = load(
        tmp_path,
        f"""
        servers:
          github:
            command: npx
            env:
              GITHUB_TOKEN: {GHP}
        """,
    )
    (problem,) = error.problems
    assert (problem.file.endswith("s.yaml"), problem.line) == (True, 5)
    assert "github-token" in problem.message and "${env:GITHUB_TOKEN}" in problem.hint
    assert GHP not in str(error)


def test_secret_rules_of_desired_state(tmp_path: Path) -> None:
    error = load(
        tmp_path,
        """
        servers:
          api:
            url: https://x/mcp
            headers:
              Authorization: Bearer ${env:TOKEN}
              X-Db: ${vault:db}
              X-Other: ${nope:x}
        secrets:
          vault:
            command: [vault, read]
          env:
            command: [x, "{name}"]
        targets:
          desktop:
            kind: claude-desktop
            servers: []
            secrets: reference
          jungle:
            kind: mcpjungle
            url: http://127.0.0.1:8080
            token: AbCd1234EfGh5678IjKl
        """,
    )
    text = str(error)
    assert "no resolver 'nope'" in text
    assert "secrets.vault.command never uses {name}" in text
    assert "'env' cannot name a resolver" in text
    assert "cannot reference environment variables" in text
    assert "targets.jungle.token: a literal secret" in text
    assert "AbCd1234EfGh5678IjKl" not in text
    assert "${vault:db}" not in text  # a declared resolver is fine


# -- redaction ----------------------------------------------------------------------------


def test_redactor_scrubs_values_and_their_escaped_spellings() -> None:
    r = Redactor(FP)
    r.add('tok"en\\value')
    r.add("abc")  # too short to be a secret: ignored
    shown = display(FP('tok"en\\value'))
    assert shown.startswith("‹secret:") and len(shown) == len("‹secret:123456›")
    assert r.scrub('x tok"en\\value y') == f"x {shown} y"
    assert r.scrub(json.dumps({"v": 'tok"en\\value'})) == json.dumps(
        {"v": shown}, ensure_ascii=False
    )
    assert r.scrub("abc") == "abc"
    assert r.scrub_data({"k": ['tok"en\\value', 1]}) == {"k": [shown, 1]}


def test_redactor_prefers_the_longest_value() -> None:
    r = Redactor(FP)
    r.add("secret")
    r.add("secret-longer")
    assert r.scrub("secret-longer") == display(FP("secret-longer"))


def test_logging_filter_scrubs_messages_args_and_exceptions() -> None:
    r = Redactor(FP)
    r.add("leaky-value-42")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(r))
    logger = logging.getLogger("test.secrets.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("token %s in use", "leaky-value-42")
        try:
            raise RuntimeError("boom leaky-value-42")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "leaky-value-42" not in out
    assert display(FP("leaky-value-42")) in out and "RuntimeError" in out


def test_redacting_stream() -> None:
    r = Redactor(FP)
    r.add("stream-secret")
    buffer = io.StringIO()
    stream = RedactingStream(buffer, r)
    stream.write("a stream-secret b\n")
    stream.writelines(["stream-secret"])
    assert "stream-secret" not in buffer.getvalue()
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw)
    RedactingStream(text, r).buffer.write(b"x stream-secret")
    assert b"stream-secret" not in raw.getvalue() and b"x " in raw.getvalue()


def test_a_value_the_redactor_knows_is_a_secret_whatever_it_looks_like() -> None:
    r = Redactor(FP)
    r.add("plain-looking-words")
    e = {"env": {"NOTE": "plain-looking-words"}, "args": ["--x=plain-looking-words", "a"]}
    found = {(f.path, f.kind) for f in scan_essence(e, r)}
    assert found == {("/env/NOTE", "known-secret"), ("/args/0", "known-secret")}
    assert scan_essence(e, r, known=False) == []
    assert scan_essence(e, Redactor(FP)) == []


def test_validation_does_not_depend_on_values_resolved_earlier(tmp_path: Path) -> None:
    from reconciler.secrets import REDACTOR

    value = "region-" + "".join(chr(97 + (i * 7) % 26) for i in range(12))
    REDACTOR.add(value)  # as a long-running daemon may have resolved it for another server
    root = tmp_path / "desired"
    root.mkdir()
    (root / "s.yaml").write_text(f"servers:\n  a:\n    command: x\n    args: [{value}]\n")
    assert list(load_desired(root).servers) == ["a"]
