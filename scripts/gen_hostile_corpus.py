"""Writes tests/data/hostile/*.case (run once; the cases are data, reviewed like code)."""
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "hostile"
OUT.mkdir(parents=True, exist_ok=True)


def case(name, exit, error, place="target", kind=None, make=None, expr=None, body="", note=None,
         answer=None, scenario=None, skip=None):
    head = []
    if note:
        head.append(f"# {note}")
    head += [f"exit: {exit}", f"error: {error}", f"place: {place}"]
    if answer:
        head.append(f"answer: {answer}")
    if scenario:
        head.append(f"scenario: {scenario}")
    if skip:
        head.append(f"skip: {skip}")
    if kind:
        head.append(f"kind: {kind}")
    if make:
        head.append(f"make: {make}")
    if expr:
        head.append(f"expr: {expr}")
    (OUT / f"{name}.case").write_text("\n".join(head) + "\n---\n" + body)


D = "desired/a.yaml"
# -- desired YAML ------------------------------------------------------------------------
case("yaml-deep-flow-100k", 2, "nested deeper than 200 levels", D,
     expr="'servers: ' + '[' * 100000 + ']' * 100000", note="libyaml crashes on this")
case("yaml-deep-flow-300", 2, "nested deeper than 200 levels", D,
     expr="'servers:\\n  a: {command: x, args: ' + '[' * 300 + ']' * 300 + '}\\n'")
case("yaml-deep-mapping-flow", 2, "nested deeper than 200 levels", D,
     expr="'servers: ' + '{a: ' * 5000 + '1' + '}' * 5000")
case("yaml-deep-block", 2, "nested deeper than 200 levels", D,
     expr="'servers:\\n' + ''.join(' ' * (i + 1) + 'k%d:\\n' % i for i in range(400))")
case("yaml-deep-compact-sequence", 2, "nested deeper than 200 levels", D,
     expr="'servers:\\n  a:\\n    args:\\n      ' + '- ' * 3000 + 'x\\n'")
case("yaml-deep-unclosed", 2, "nested deeper than 200 levels", D,
     expr="'servers: ' + '[' * 50000", note="an endless open flow sequence")
case("yaml-fifo", 2, "is a FIFO, not a regular file", D, make="fifo", note="never blocks")
case("yaml-socket", 2, "is a socket, not a regular file", D, make="socket")
case("yaml-symlink-loop", 2, "symlink loop", D, make="loop")
case("yaml-device", 2, "is a device, not a regular file", D, make="device",
     note="a link to /dev/zero: endless")
case("yaml-too-big", 2, "more than the 16777216 allowed", D, make="big")
case("yaml-lone-surrogate", 2, "a lone UTF-16 surrogate escape", D,
     body='servers:\n  a: {command: "\\uD800"}\n')
case("yaml-lone-low-surrogate", 2, "a lone UTF-16 surrogate escape", D,
     body='servers:\n  a: {command: uvx, args: ["x\\udc00"]}\n')
case("yaml-surrogate-pair-escape", 2, "a UTF-16 surrogate escape", D,
     body='servers:\n  a: {command: uvx, args: ["\\ud83d\\ude00"]}\n',
     note="JSON pairs these escapes, YAML does not: each half is a lone surrogate")
case("yaml-surrogate-pair-escape-in-key", 2, "a UTF-16 surrogate escape", D,
     body='servers:\n  a: {command: uvx, env: {"\\ud83d\\ude00": x}}\n')
case("yaml-huge-integer", 2, "a number too long", D,
     expr="'servers:\\n  a: {command: uvx, args: [' + '9' * 5000 + ']}\\n'")
case("yaml-huge-integer-key", 2, "a number too long", D,
     expr="'servers:\\n  ' + '7' * 4500 + ': {command: uvx}\\n'")
case("yaml-not-utf8", 2, "not UTF-8 text", D, expr="'servers: {}\\n# \\udcff'",
     note="invalid UTF-8 bytes")
case("yaml-nul-byte", 2, "a.yaml:", D, body="servers:\n  a\0b: {command: uvx}\n")
case("yaml-alias-bomb", 2, "document expands to too many nodes", D, body=(
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
))
case("yaml-recursive-alias", 2, "nested too deep (a recursive alias?)", D, body="servers: &s\n  a: *s\n")
case("yaml-top-level-scalar", 2, "a desired-state file must be a mapping", D, body="just text\n")
case("yaml-tab-indent", 2, "a.yaml:2:", D, body="servers:\n\ta: {command: uvx}\n")
case("yaml-unterminated-quote", 2, "a.yaml:3:1: found unexpected end of stream", D, body='servers:\n  a: {command: "uvx}\n')

T = "targets:\n  {name}: {{kind: claude-desktop, path: \"{{target}}\"}}\n"
S = "servers:\n  time: {{command: uvx}}\n"
for name, value, note in [
    ("target-name-parent", '"../x"', "would write last-applied/../x.json"),
    ("target-name-deep-parent", '"../../../../etc/x"', None),
    ("target-name-absolute", '"/etc/passwd"', None),
    ("target-name-slash", '"a/b"', None),
    ("target-name-backslash", '"a\\\\b"', None),
    ("target-name-leading-dot", '".hidden"', None),
    ("target-name-dotdot", '".."', None),
    ("target-name-dot", '"."', None),
    ("target-name-nul", '"a\\0b"', None),
    ("target-name-newline", '"a\\nb"', None),
    ("target-name-space", '"a b"', None),
    ("target-name-empty", '""', None),
    ("target-name-too-long", '"' + "a" * 101 + '"', None),
    ("target-name-unicode", '"tärget"', None),
    ("target-name-double-dot-inside", '"a..b"', None),
    ("target-name-leading-dash", '"-rf"', None),
]:
    body = "servers:\n  time: {command: uvx}\ntargets:\n  " + value + ': {kind: claude-desktop, path: "{target}"}\n'
    case(name, 2, "invalid target name", D, body=body, note=note)
for name, value in [
    ("mirror-name-parent", '"../m"'),
    ("mirror-name-absolute", '"/tmp/m"'),
    ("mirror-name-slash", '"m/n"'),
    ("mirror-name-leading-dot", '".m"'),
    ("mirror-name-nul", '"m\\0"'),
]:
    body = "mirrors:\n  " + value + ": {source: src, copies: [copy]}\n"
    case(name, 2, "invalid mirror name", D, body=body)
for name, value in [
    ("server-name-parent", '"../s"'),
    ("server-name-absolute", '"/s"'),
    ("server-name-slash", '"s/t"'),
    ("server-name-leading-dot", '".s"'),
    ("server-name-nul", '"s\\0"'),
    ("server-name-space", '"s t"'),
]:
    body = "servers:\n  " + value + ": {command: uvx}\n"
    case(name, 2, "invalid server name", D, body=body)

# -- client files --------------------------------------------------------------------------
JSON_KINDS = ["claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "gemini", "opencode"]
KEY = {"vscode": "servers", "opencode": "mcp"}
for kind in JSON_KINDS:
    key = KEY.get(kind, "mcpServers")
    case(f"{kind}-empty", 3, "the file is empty", kind=kind, note="a client mid-save")
    case(f"{kind}-whitespace", 3, "the file is empty", kind=kind, body="  \n\n")
    case(f"{kind}-truncated", 3, "the document ends before it is complete", kind=kind,
         body='{\n  "theme": "dark",\n  "' + key + '": {\n    "other": {"command": "npx"'
         , note="cut halfway through a non-atomic save")
    case(f"{kind}-deep", 3, "nested deeper than 200 levels", kind=kind,
         expr=f"'{{\"{key}\": ' + '[' * 100000 + ']' * 100000 + '}}'")
    case(f"{kind}-lone-surrogate", 3, "a lone UTF-16 surrogate escape", kind=kind,
         body='{"' + key + '": {"a": {"command": "\\ud800"}}}\n')
    case(f"{kind}-huge-integer", 3, "an integer too large", kind=kind,
         expr=f"'{{\"{key}\": {{\"a\": {{\"command\": \"x\", \"args\": [' + '9' * 5000 + ']}}}}}}'")
    case(f"{kind}-fifo", 3, "is a FIFO, not a regular file", kind=kind, make="fifo")
    case(f"{kind}-socket", 3, "is a socket, not a regular file", kind=kind, make="socket")
    case(f"{kind}-directory", 3, "is a directory, not a regular file", kind=kind, make="dir")
    case(f"{kind}-symlink-loop", 3, "symlink loop", kind=kind, make="loop")
    case(f"{kind}-device", 3, "is a device, not a regular file", kind=kind, make="device")
    case(f"{kind}-too-big", 3, "more than the 16777216 allowed", kind=kind, make="big")
    case(f"{kind}-not-utf8", 3, "not UTF-8 text", kind=kind, expr="'{\"a\": \"\\udcff\"}'")
    case(f"{kind}-top-level-array", 3, "the top level is not a JSON object", kind=kind,
         body="[1, 2]\n")

K = "codex"
case("codex-empty", 3, "the file is empty", kind=K, note="an empty TOML is valid, but never ours to fill")
case("codex-whitespace", 3, "the file is empty", kind=K, body="\n \n")
case("codex-truncated-table", 3, "invalid TOML", kind=K, body='model = "o3"\n[mcp_servers.a\n')
case("codex-truncated-string", 3, "invalid TOML", kind=K, body='[mcp_servers.a]\ncommand = "np')
case("codex-deep-array", 3, "nested deeper than 200 levels", kind=K,
     expr="'a = ' + '[' * 100000 + ']' * 100000")
case("codex-deep-inline-table", 3, "nested deeper than 200 levels", kind=K,
     expr="'a = ' + '{b = ' * 3000 + '1' + '}' * 3000")
case("codex-huge-integer", 3, "an integer too large", kind=K,
     expr="'[mcp_servers.a]\\ncommand = \"x\"\\ntimeout = ' + '9' * 5000 + '\\n'")
case("codex-lone-surrogate", 3, "invalid TOML", kind=K, body='[mcp_servers.a]\ncommand = "\\ud800"\n')
case("codex-not-utf8", 3, "not UTF-8 text", kind=K, expr="'a = \"\\udcff\"'")
case("codex-fifo", 3, "is a FIFO, not a regular file", kind=K, make="fifo")
case("codex-socket", 3, "is a socket, not a regular file", kind=K, make="socket")
case("codex-directory", 3, "is a directory, not a regular file", kind=K, make="dir")
case("codex-symlink-loop", 3, "symlink loop", kind=K, make="loop")
case("codex-device", 3, "is a device, not a regular file", kind=K, make="device")
case("codex-too-big", 3, "more than the 16777216 allowed", kind=K, make="big")

# -- state files ----------------------------------------------------------------------------
FK = "state/fingerprint.key"
case("key-short", 3, "fewer than 32", FK, body="abc")
case("key-empty", 3, "the fingerprint key is 0 bytes", FK)
case("key-fifo", 3, "is a FIFO, not a regular file", FK, make="fifo")
case("key-directory", 3, "is a directory, not a regular file", FK, make="dir")
case("key-symlink-loop", 3, "symlink loop", FK, make="loop")
case("key-device", 3, "is a device, not a regular file", FK, make="device")
LA = "state/last-applied/desktop.json"
case("last-applied-truncated", 3, "unreadable last-applied record", LA,
     body='{"format": 1, "target": "desktop", "entries": {"time": {"essence": {"comm')
case("last-applied-empty", 3, "unreadable last-applied record", LA)
case("last-applied-array", 3, "malformed last-applied record", LA, body="[]\n")
case("last-applied-entry-not-object", 3, "malformed last-applied record", LA,
     body='{"format": 1, "entries": {"time": 5}}\n')
case("last-applied-essence-missing", 3, "malformed last-applied record", LA,
     body='{"format": 1, "entries": {"time": {"created": true}}}\n')
case("last-applied-deep", 3, "unreadable last-applied record", LA,
     expr="'{\"entries\": ' + '[' * 100000 + ']' * 100000 + '}'")
case("last-applied-huge-integer", 3, "unreadable last-applied record", LA,
     expr="'{\"entries\": ' + '9' * 5000 + '}'")
case("last-applied-not-utf8", 3, "unreadable last-applied record", LA, expr="'{\"a\": \"\\udcff\"}'")
case("last-applied-fifo", 3, "is a FIFO, not a regular file", LA, make="fifo")
case("last-applied-directory", 3, "is a directory, not a regular file", LA, make="dir")
case("last-applied-too-big", 3, "more than the 16777216 allowed", LA, make="big")

# -- ${file:} secrets -----------------------------------------------------------------------
for make, error in [("fifo", "is a FIFO"), ("socket", "is a socket"), ("dir", "is a directory"),
                    ("loop", "symlink loop"), ("device", "is a device"),
                    ("big", "more than the 16777216 allowed")]:
    case(f"secret-file-{make}", 3, error, "secret", make=make)
# -- MCPJungle answers (served by tests/fakes/mcpjungle.py) ----------------------------------
# ``answer: STATUS METHOD PATH``: the fake answers that request with the body, as is.
J = "mcpjungle"
CONFIGS = "200 GET /api/v0/server_configs"
TOOLS = "200 GET /api/v0/tools"
STDIO = '[{"name": "time", "transport": "stdio", "command": "uvx"'
for name, answer, error, extra in [
    ("configs", CONFIGS, None, {}),
    ("tools", TOOLS, None, {}),
]:
    case(f"jungle-{name}-malformed", 3, "is not JSON", J, answer=answer, body='[{"name": "ti')
    case(f"jungle-{name}-deep", 3, "nested deeper than 200 levels", J, answer=answer,
         expr="'[' * 100000 + ']' * 100000")
    case(f"jungle-{name}-not-utf8", 3, "not UTF-8 text", J, answer=answer,
         expr="'[{\"name\": \"\\udcff\"}]'")
    case(f"jungle-{name}-huge-integer", 3, "an integer too large", J, answer=answer,
         expr="'[{\"name\": \"time\", \"id\": ' + '9' * 5000 + '}]'")
    case(f"jungle-{name}-lone-surrogate", 3, "a lone UTF-16 surrogate escape", J, answer=answer,
         body='[{"name": "\\ud800"}]')
    case(f"jungle-{name}-object", 3, "is not a list of objects", J, answer=answer,
         body='{"' + name + '": []}')
    case(f"jungle-{name}-list-of-strings", 3, "is not a list of objects", J, answer=answer,
         body='["time"]')
    case(f"jungle-{name}-name-missing", 3, "has no name", J, answer=answer, body='[{"id": 1}]')
    case(f"jungle-{name}-name-not-string", 3, "has no name", J, answer=answer,
         body='[{"name": 7}]')
    case(f"jungle-{name}-too-big", 3, "more than 16777216 bytes", J, answer=answer, make="big")
case("jungle-tools-enabled-not-bool", 3, "'enabled' is not true or false", J, answer=TOOLS,
     body='[{"name": "time__now", "enabled": "no"}]')
case("jungle-configs-args-not-list", 3, "'args' is not a list of strings", J, answer=CONFIGS,
     body=STDIO + ', "args": "mcp-server-time"}]')
case("jungle-configs-env-not-object", 3, "'env' is not an object of strings", J, answer=CONFIGS,
     body=STDIO + ', "env": "TZ=UTC"}]')
case("jungle-configs-command-not-string", 3, "'command' is not a string", J, answer=CONFIGS,
     body='[{"name": "time", "transport": "stdio", "command": ["uvx"]}]')
case("jungle-configs-headers-not-object", 3, "'headers' is not an object of strings", J,
     answer=CONFIGS,
     body='[{"name": "web", "transport": "streamable_http", "url": "http://x", "headers": [1]}]')
case("jungle-error-body-deep", 3, "could not read the registered servers", J,
     answer="500 GET /api/v0/server_configs", expr="'{\"error\": ' + '[' * 100000 + ']' * 100000 + '}'",
     note="the error text of a failed read is itself hostile")
# -- MCPJungle answers to the requests of an applying pass ----------------------------------
# ``scenario``: the change the pass makes (tests/test_hostile.py, WRITE_SCENARIOS): create,
# replace, disable, enable, govern, allow, delete; ``skip: N``: the first N requests that
# match ``answer`` are handled normally (the observing read before the one after a register).
# The fake answers the request once (writes are never retried; a read three times); exit 0
# cases have ``error: none``: the body of a success is not needed, and the pass converges.
ERRORS = {  # an error body, by what is wrong with it
    "malformed": ("body", '{"error": "fail'),
    "deep": ("expr", "'{\"error\": ' + '[' * 100000 + ']' * 100000 + '}'"),
    "not-utf8": ("expr", "'{\"error\": \"\\udcff\"}'"),
    "huge-integer": ("expr", "'{\"error\": ' + '9' * 5000 + '}'"),
    "lone-surrogate": ("body", '{"error": "\\ud800"}'),
    "too-big": ("make", "big"),
    "not-object": ("body", '["error", 1]'),
}
OAUTH = {  # a 202 (OAuth pending) body, by what is wrong with it
    **{k: v for k, v in ERRORS.items() if k != "deep"},
    "deep": ("expr", "'{\"authorization_required\": ' + '[' * 100000 + ']' * 100000 + '}'"),
    "authorization-not-object": ("body", '{"authorization_required": "soon"}'),
    "authorization-url-huge": (
        "expr", "'{\"authorization_required\": {\"authorization_url\": \"https://idp.test/' "
        "+ 'a' * 100000 + '\", \"expires_at\": ' + '[' * 50 + ']' * 50 + '}}'"),
}


def jungle_write(name, scenario, answer, error, how, exit=3, skip=None):
    kind, value = how
    case(f"jungle-{scenario}-{name}", exit, error, J, answer=answer, scenario=scenario, skip=skip,
         **{kind: value})


REGISTER = "POST /api/v0/servers"
for scenario, oauth, statuses in [
    ("create", OAUTH, {"500": ERRORS, "400": ERRORS}),
    ("replace", {k: OAUTH[k] for k in ("malformed", "deep", "authorization-not-object")},
     {"500": {k: ERRORS[k] for k in ("deep", "not-utf8", "too-big")},
      "400": {k: ERRORS[k] for k in ("huge-integer", "lone-surrogate")}}),
]:
    for body, how in oauth.items():
        error = ("with more than 16777216 bytes" if body == "too-big"
                 else "needs OAuth authorization for server 'time'")
        jungle_write(f"register-202-{body}", scenario, f"202 {REGISTER}", error, how)
    for status, bodies in statuses.items():
        for body, how in bodies.items():
            error = ("with more than 16777216 bytes" if body == "too-big"
                     else f"could not register server 'time': {status}")
            jungle_write(f"register-{status}-{body}", scenario, f"{status} {REGISTER}", error, how)
    jungle_write("register-400-code-not-string", scenario, f"400 {REGISTER}",
                 "could not register server 'time': 400",
                 ("body", '{"error": "bad input", "code": ["upstream_oauth_required"]}'))
    jungle_write("register-201-garbage", scenario, f"201 {REGISTER}", "none",
                 ERRORS["deep"], exit=0)
jungle_write("register-400-code-number", "create", f"400 {REGISTER}",
             "could not register server 'time': 400", ("body", '{"error": "no", "code": 400}'))
for scenario, verb, picks in [
    ("disable", "disable", ("malformed", "deep", "not-utf8", "lone-surrogate", "too-big")),
    ("enable", "enable", ("deep", "huge-integer", "not-object")),
]:
    answer = f"/api/v0/servers/:name/{verb}"
    for body in picks:
        status = "400" if body in ("lone-surrogate", "huge-integer") else "500"
        error = ("with more than 16777216 bytes" if body == "too-big"
                 else f"could not {verb} server 'time': {status}")
        jungle_write(f"server-{verb}-{status}-{body}", scenario, f"{status} POST {answer}",
                     error, ERRORS[body])
    jungle_write(f"server-{verb}-200-garbage", scenario, f"200 POST {answer}", "none",
                 ERRORS["malformed"], exit=0)
FLAGS_LEFT = "was registered as planned, but setting its tool flags failed"
TOOLS_OF = "200 GET /api/v0/tools"  # ?server=time, after a register: the second tools read
for body, how, error in [
    ("malformed", ("body", '[{"name": "ti'), "is not JSON"),
    ("deep", ("expr", "'[' * 100000 + ']' * 100000"), "nested deeper than 200 levels"),
    ("not-utf8", ("expr", "'[{\"name\": \"\\udcff\"}]'"), "not UTF-8 text"),
    ("object", ("body", '{"tools": []}'), "is not a list of objects"),
    ("name-missing", ("body", '[{"enabled": true}]'), "has no name"),
    ("enabled-not-bool", ("body", '[{"name": "time__convert_time", "enabled": 0}]'),
     "'enabled' is not true or false"),
    ("too-big", ("make", "big"), "more than 16777216 bytes"),
]:
    jungle_write(f"tools-of-server-{body}", "create", TOOLS_OF, error, how, skip=1)
jungle_write("tools-of-server-after-enable-deep", "enable", TOOLS_OF,
             "nested deeper than 200 levels", ("expr", "'[' * 100000 + ']' * 100000"), skip=1)
for scenario, verb, picks in [
    ("govern", "disable", ("deep", "not-utf8", "huge-integer", "malformed")),
    ("allow", "enable", ("deep", "lone-surrogate")),
    ("create", "disable", ("deep",)),
]:
    answer = f"POST /api/v0/tools/{verb}"
    for body in picks:
        status = {"huge-integer": "400", "malformed": "404"}.get(body, "500")
        error = f"could not {verb} tool time__convert_time: {status}"
        if status == "404":  # not JSON: gin's own 404 for a route it does not have
            error = f"has no route for POST /api/v0/tools/{verb}"
        if scenario == "create":
            error = FLAGS_LEFT
        jungle_write(f"tool-{verb}-{status}-{body}", scenario, f"{status} {answer}", error,
                     ERRORS[body])
    jungle_write(f"tool-{verb}-200-garbage", scenario, f"200 {answer}", "none",
                 ERRORS["deep"], exit=0)
DELETE = "DELETE /api/v0/servers/:name"
for body in ("malformed", "deep", "not-utf8", "huge-integer", "too-big"):
    status = "400" if body == "huge-integer" else "500"
    error = ("with more than 16777216 bytes" if body == "too-big"
             else f"could not deregister server 'fetch': {status}")
    jungle_write(f"deregister-{status}-{body}", "delete", f"{status} {DELETE}", error,
                 ERRORS[body])
jungle_write("deregister-404-not-json", "delete", f"404 {DELETE}", "has no route for DELETE",
             ERRORS["not-utf8"])
jungle_write("deregister-204-garbage", "delete", f"204 {DELETE}", "none", ERRORS["deep"], exit=0)
# MCPJungle made the change, then answered an error (its answer garbled or wrong): with
# ``exit: 0`` the fake makes the change before it answers, and a read-back must find it.
for name, scenario, answer in [
    ("register-500-made", "create", f"500 {REGISTER}"),
    ("register-400-made", "create", f"400 {REGISTER}"),
    ("register-500-made", "replace", f"500 {REGISTER}"),
    ("server-disable-500-made", "disable", "500 POST /api/v0/servers/:name/disable"),
    ("server-enable-500-made", "enable", "500 POST /api/v0/servers/:name/enable"),
    ("tool-disable-500-made", "govern", "500 POST /api/v0/tools/disable"),
    ("tool-enable-500-made", "allow", "500 POST /api/v0/tools/enable"),
    ("tool-disable-500-made", "create", "500 POST /api/v0/tools/disable"),
    ("deregister-500-made", "delete", f"500 {DELETE}"),
]:
    jungle_write(f"{name}-deep", scenario, answer, "none", ERRORS["deep"], exit=0)
jungle_write("deregister-500-made-too-big", "delete", f"500 {DELETE}", "none", ("make", "big"),
             exit=0)
print(len(list(OUT.glob("*.case"))))
