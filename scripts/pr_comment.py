#!/usr/bin/env python3
"""Post the markdown plan on a pull request as ONE comment, updated on every push.

Used by the composite action (``action.yml``). The comment is found again by a hidden
marker (an HTML comment GitHub does not render), so each run edits the same comment instead
of adding another. Standard library only (``urllib``): the action runs it before, and
independently of, whatever Python packages the repository installs.

    GITHUB_TOKEN, GITHUB_REPOSITORY (owner/name), GITHUB_API_URL (default api.github.com),
    and the pull request number from --pr or from the event (GITHUB_EVENT_PATH).

Exit 0 when the comment was posted or updated, 1 on an API error (the message on stderr,
never the token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MARKER = "<!-- mcp-reconciler-plan -->"
LIMIT = 65_000  # GitHub refuses comment bodies over 65,536 characters
PER_PAGE = 100


class ApiError(Exception):
    pass


class Api:
    """The few GitHub REST calls this needs: list, create and update issue comments."""

    def __init__(self, base: str, repository: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.repository = repository
        self._token = token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "mcp-reconciler-action",
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            raise ApiError(f"{method} {path}: HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise ApiError(f"{method} {path}: {e.reason}") from e
        return json.loads(text) if text else None

    def comments(self, pr: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._call(
                "GET",
                f"/repos/{self.repository}/issues/{pr}/comments?per_page={PER_PAGE}&page={page}",
            )
            found += batch
            if len(batch) < PER_PAGE:
                return found
            page += 1

    def create(self, pr: int, body: str) -> dict[str, Any]:
        path = f"/repos/{self.repository}/issues/{pr}/comments"
        result: dict[str, Any] = self._call("POST", path, {"body": body})
        return result

    def update(self, comment_id: int, body: str) -> dict[str, Any]:
        path = f"/repos/{self.repository}/issues/comments/{comment_id}"
        result: dict[str, Any] = self._call("PATCH", path, {"body": body})
        return result


def comment_body(plan: str, marker: str = MARKER) -> str:
    body = f"{marker}\n{plan}"
    if len(body) > LIMIT:
        cut = body[: LIMIT - 200]
        note = f"plan truncated ({len(body)} characters); run `reconcile --dry-run` locally"
        body = f"{cut}\n\n… {note}.\n"
    return body


def upsert(api: Api, pr: int, plan: str, marker: str = MARKER) -> tuple[str, int]:
    """Update the comment that carries ``marker``, or post one: ("updated"|"created", id)."""
    body = comment_body(plan, marker)
    for comment in api.comments(pr):
        if marker in (comment.get("body") or ""):
            api.update(int(comment["id"]), body)
            return "updated", int(comment["id"])
    created = api.create(pr, body)
    return "created", int(created["id"])


def _pr_number(given: int | None) -> int:
    if given is not None:
        return given
    event = os.environ.get("GITHUB_EVENT_PATH")
    if event:
        data = json.loads(Path(event).read_text(encoding="utf-8"))
        number = (data.get("pull_request") or {}).get("number") or data.get("number")
        if number:
            return int(number)
    raise SystemExit("pr_comment: no pull request number (--pr, or a pull_request event)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--body-file", type=Path, required=True, help="the markdown plan")
    parser.add_argument("--pr", type=int, help="pull request number (default: the event's)")
    parser.add_argument("--marker", default=MARKER, help="hidden marker of the comment")
    args = parser.parse_args(argv)
    token = os.environ.get("GITHUB_TOKEN")
    repository = os.environ.get("GITHUB_REPOSITORY")
    if not token or not repository:
        print("pr_comment: GITHUB_TOKEN and GITHUB_REPOSITORY are required", file=sys.stderr)
        return 1
    api = Api(os.environ.get("GITHUB_API_URL") or "https://api.github.com", repository, token)
    plan = args.body_file.read_text(encoding="utf-8")
    try:
        action, comment_id = upsert(api, _pr_number(args.pr), plan, args.marker)
    except ApiError as e:
        print(f"pr_comment: {e}", file=sys.stderr)
        return 1
    print(f"pr_comment: {action} comment {comment_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
