"""The GitHub Action (``action.yml``): its comment script against a local fake of the
GitHub comments API on loopback (posts once, then updates the same comment), and its plan
script against a real git repository with a base commit and a pull request's change."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import Workspace
from tests.daemon_harness import REPO_ROOT
from tests.gitrepo import commit_all, git, init_repo, isolate_git

SCRIPTS = REPO_ROOT / "scripts"
TOKEN = "ghs_" + "t0k3n" * 8  # a canary: never printed


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pr_comment", SCRIPTS / "pr_comment.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pr_comment = _load()


class FakeGitHub:
    """The issue-comments endpoints of one repository, in memory, with pagination."""

    def __init__(self, repository: str, existing: int = 0) -> None:
        self.repository = repository
        self.comments: list[dict[str, Any]] = [
            {"id": 1000 + i, "body": f"a review comment {i}"} for i in range(existing)
        ]
        self.calls: list[tuple[str, str]] = []
        self.fail: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                data: dict[str, Any] = json.loads(self.rfile.read(length))
                return data

            def _route(self, method: str) -> None:
                fake.calls.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, {"message": "Bad credentials"})
                if fake.fail is not None:
                    return self._reply(fake.fail, {"message": "nope"})
                base = f"/repos/{fake.repository}/issues"
                path, _, query = self.path.partition("?")
                if method == "GET" and path == f"{base}/7/comments":
                    params = dict(p.split("=") for p in query.split("&") if p)
                    per, page = int(params.get("per_page", 30)), int(params.get("page", 1))
                    return self._reply(200, fake.comments[(page - 1) * per : page * per])
                if method == "POST" and path == f"{base}/7/comments":
                    comment = {"id": 5000 + len(fake.comments), "body": self._body()["body"]}
                    fake.comments.append(comment)
                    return self._reply(201, comment)
                if method == "PATCH" and path.startswith(f"{base}/comments/"):
                    wanted = int(path.rsplit("/", 1)[1])
                    for comment in fake.comments:
                        if comment["id"] == wanted:
                            comment["body"] = self._body()["body"]
                            return self._reply(200, comment)
                return self._reply(404, {"message": "Not Found"})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def marked(self) -> list[dict[str, Any]]:
        return [c for c in self.comments if pr_comment.MARKER in c["body"]]


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    fake = FakeGitHub("fleet/desired", existing=130)  # the marker hides on page 2
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", "fleet/desired")
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    yield fake
    fake.close()


def test_posts_one_comment_then_updates_it(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text("### mcp-reconciler plan\n\n**2 would change** across 1 target\n")
    assert pr_comment.main(["--body-file", str(plan), "--pr", "7"]) == 0
    assert [m for m, _ in github.calls].count("POST") == 1
    assert len(github.marked()) == 1
    first = github.marked()[0]
    assert first["body"].startswith(pr_comment.MARKER + "\n### mcp-reconciler plan")

    github.calls.clear()
    plan.write_text("### mcp-reconciler plan\n\n**no changes** across 1 target\n")
    assert pr_comment.main(["--body-file", str(plan), "--pr", "7"]) == 0
    methods = [m for m, _ in github.calls]
    assert "POST" not in methods and methods.count("PATCH") == 1
    assert methods.count("GET") == 2  # 130 + 1 comments: two pages of 100
    assert len(github.marked()) == 1 and github.marked()[0]["id"] == first["id"]
    assert "**no changes**" in github.marked()[0]["body"]
    assert len(github.comments) == 131  # nobody else's comment was touched
    out = capsys.readouterr()
    assert "updated comment" in out.out and TOKEN not in out.out + out.err


def test_the_pull_request_number_comes_from_the_event(
    github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    plan = tmp_path / "plan.md"
    plan.write_text("plan\n")
    assert pr_comment.main(["--body-file", str(plan)]) == 0
    assert len(github.marked()) == 1


@pytest.mark.parametrize("status", [403, 500])
def test_an_api_error_fails_without_showing_the_token(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    github.fail = status
    plan = tmp_path / "plan.md"
    plan.write_text("plan\n")
    assert pr_comment.main(["--body-file", str(plan), "--pr", "7"]) == 1
    err = capsys.readouterr().err
    assert f"HTTP {status}" in err and TOKEN not in err


def test_an_oversized_plan_is_cut_below_githubs_limit() -> None:
    body = pr_comment.comment_body("x" * 100_000)
    assert len(body) <= pr_comment.LIMIT and body.startswith(pr_comment.MARKER)
    assert "plan truncated" in body


# -- the action and its plan script ------------------------------------------------------------


def test_the_action_validates_plans_and_comments() -> None:
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    scripts = " ".join(step.get("run", "") for step in action["runs"]["steps"])
    assert "reconcile validate" in scripts
    assert "scripts/pr_plan.sh" in scripts and "scripts/pr_comment.py" in scripts
    for name in ("pr_plan.sh", "pr_comment.py"):
        assert (SCRIPTS / name).stat().st_mode & stat.S_IXUSR


DESIRED = """
servers:
  time:
    command: uvx
    args: [mcp-server-time, --local-timezone=UTC]
targets:
  desktop:
    kind: claude-desktop
"""


def _run_plan(ws: Workspace, tmp_path: Path, base: str, **env: str) -> tuple[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "reconcile"  # this checkout's reconciler, as the action installs it
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m reconciler "$@"\n')
    shim.chmod(0o755)
    output = tmp_path / "github-output"
    environ = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "DESIRED": "desired",
        "BASE_SHA": base,
        "GITHUB_OUTPUT": str(output),
        **env,
    }
    plan = tmp_path / "plan.md"
    done = subprocess.run(
        ["bash", str(SCRIPTS / "pr_plan.sh"), str(plan)],
        cwd=ws.root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return plan.read_text(), output.read_text()


@pytest.fixture
def repo(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    workspace.write("desired.yaml", DESIRED)
    commit_all(workspace.root, "base")
    return workspace


def test_the_plan_is_the_pull_requests_change_against_the_base_branch(
    repo: Workspace, tmp_path: Path
) -> None:
    base = git(repo.root, "rev-parse", "HEAD").strip()
    repo.write("desired.yaml", DESIRED.replace("=UTC]", "=Europe/Paris]"))
    commit_all(repo.root, "the pull request")
    before = sorted(p.name for p in repo.home.rglob("*"))
    text, output = _run_plan(repo, tmp_path, base)
    assert "exit_code=1" in output
    assert "**1 would change** across 1 target" in text
    assert "--local-timezone=Europe/Paris" in text and "| update | desired |" in text
    assert sorted(p.name for p in repo.home.rglob("*")) == before  # the sandbox, not HOME


def test_the_plan_without_a_change_says_so_and_invalid_state_is_reported(
    repo: Workspace, tmp_path: Path
) -> None:
    base = git(repo.root, "rev-parse", "HEAD").strip()
    text, output = _run_plan(repo, tmp_path, base)
    assert "exit_code=0" in output and "**no changes**" in text
    repo.write("desired.yaml", DESIRED.replace("claude-desktop", "nonsense"))
    text, output = _run_plan(repo, tmp_path, base)
    assert "exit_code=2" in output and "desired state is invalid" in text


def test_a_committed_state_dir_judges_the_origins(repo: Workspace, tmp_path: Path) -> None:
    """The machines last applied a third value (not the base's): the plan's change is then
    a conflict, judged against their state, not against the base branch's apply."""
    base = git(repo.root, "rev-parse", "HEAD").strip()
    machine_home, elsewhere = tmp_path / "machine-home", tmp_path / "other"
    machine_home.mkdir()
    (elsewhere / "desired").mkdir(parents=True)
    (elsewhere / "desired" / "desired.yaml").write_text(DESIRED.replace("=UTC]", "=Asia/Tokyo]"))
    applied = subprocess.run(
        [sys.executable, "-m", "reconciler", "--desired", str(elsewhere / "desired")],
        env={**os.environ, "HOME": str(machine_home), "PYTHONPATH": str(REPO_ROOT)},
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    machines = machine_home / ".local" / "state" / "mcp-reconciler"
    assert machines.is_dir()
    repo.write("desired.yaml", DESIRED.replace("=UTC]", "=Europe/Paris]"))
    commit_all(repo.root, "the pull request")
    text, _output = _run_plan(repo, tmp_path, base, STATE_DIR=str(machines))
    assert "| update | conflict |" in text and "last applied" in text
    assert "Asia/Tokyo" in text
    plain, _output = _run_plan(repo, tmp_path, base)
    assert "| update | desired |" in plain
