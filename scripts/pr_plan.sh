#!/usr/bin/env bash
# The markdown plan of a pull request, for the composite action (action.yml).
#
#   pr_plan.sh OUT.md      (environment: DESIRED, BASE_SHA, STATE_DIR)
#
# What each machine would do if the pull request merged: the clients' files are made in a
# sandbox HOME by applying the base branch's desired state (BASE_SHA), as a converged machine
# holds them; then `reconcile --dry-run --format markdown` plans the pull request's desired
# state (DESIRED, the checkout) against them. When STATE_DIR names a state directory the
# machines commit (last-applied inventory), a copy of it is used for the plan, so each
# change's origin is judged against what the machines last applied; otherwise the base
# branch's own apply is the last-applied state. Nothing outside a temp dir is written.
#
# Writes OUT.md, prints exit_code=N (the dry run's: 0 none, 1 changes, 2 invalid, 3 failed)
# to $GITHUB_OUTPUT when set, and exits 0 unless the script itself could not run.
set -uo pipefail

out=${1:?usage: pr_plan.sh OUT.md}
desired=${DESIRED:-desired}
base=${BASE_SHA:?BASE_SHA: the base branch commit}
state=${STATE_DIR:-}

root=$(git rev-parse --show-toplevel) || exit 2
desired_abs=$(cd "$desired" && pwd) || exit 2
rel=${desired_abs#"$root"/}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/home" "$work/base"

# Every client location variable points into the sandbox: never the runner's own files.
export HOME="$work/home"
unset XDG_CONFIG_HOME XDG_STATE_HOME XDG_DATA_HOME XDG_CACHE_HOME APPDATA LOCALAPPDATA \
  CODEX_HOME CLAUDE_CONFIG_DIR RECONCILER_DESIRED RECONCILER_STATE_DIR GEMINI_CLI_HOME \
  OPENCODE_CONFIG

if git -C "$root" cat-file -e "$base:$rel" 2>/dev/null; then
  git -C "$root" archive "$base" -- "$rel" | tar -x -C "$work/base"
  # The base branch, applied: the machines as they stand before the merge.
  reconcile --desired "$work/base/$rel" --state-dir "$work/base-state" -q >/dev/null 2>&1 || true
fi
if [ -n "$state" ] && [ -d "$state" ]; then
  cp -a "$state" "$work/state"
elif [ -d "$work/base-state" ]; then
  cp -a "$work/base-state" "$work/state"
else
  mkdir -p "$work/state"
fi

reconcile --dry-run --format markdown --desired "$desired_abs" --state-dir "$work/state" >"$out"
code=$?
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "exit_code=$code" >>"$GITHUB_OUTPUT"
fi
echo "plan: exit code $code"
exit 0
