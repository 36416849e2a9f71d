#!/usr/bin/env bash
# System packages the tests start or drive themselves: PostgreSQL (throwaway
# clusters), Redis (message triggers), Chromium (web UI tests, driven by
# Playwright without downloading a browser), curl and jq (the pr_eval CI script),
# strace (what the fsync tests observe). Under CI=true a missing one fails
# those tests instead of skipping them, so install what is missing when we can
# (root + apt-get); otherwise say what is missing and let the tests skip.
set -euo pipefail

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ||
    missing+=(postgresql-15)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# examples/pr_eval/ci_call.sh is what a CI job runs: curl and jq.
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
# strace: the fsync-ordering tests (artifact publish, the metadata's group fsync).
command -v strace >/dev/null || missing+=(strace)
((${#missing[@]})) || exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "test-services: not installed: ${missing[*]} (needs root and apt-get);" \
        "the tests that need them skip locally and fail under CI=true" >&2
    exit 0
fi
echo "test-services: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# A distribution without postgresql-15 gets its default `postgresql` (tests/postgres.py
# uses the newest /usr/lib/postgresql/*/bin when 15 is absent).
apt-get install -y -qq "${missing[@]}" ||
    apt-get install -y -qq "${missing[@]/postgresql-15/postgresql}"
