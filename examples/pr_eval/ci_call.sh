#!/usr/bin/env bash
# The call a CI job makes for a pull request: trigger the `pr_eval` suite on a
# `lockgate server` with the PR's Git SHA, follow the run until it ends, print
# the verdict and exit with it.
#
#   LOCKGATE_URL=http://127.0.0.1:8787 LOCKGATE_TOKEN=lg_... ./ci_call.sh GIT_SHA [PR]
#
# Exit codes: 0 the suite passed; 1 the suite ran and failed its gate (the PR
# regresses the bot: block the merge); 2 anything else (no server, bad token,
# the run crashed or was cancelled, or no verdict within PR_EVAL_TIMEOUT s):
# the eval infrastructure needs a look, not the PR.
#
# Environment: LOCKGATE_TOKEN (required; `lockgate token create ci` prints one,
# scope `run`), LOCKGATE_URL (default http://127.0.0.1:8787), PR_EVAL_TIMEOUT
# (seconds, default 1800), PR_EVAL_PARAMS (a JSON object of more pipeline
# parameters, e.g. '{"wrong_answer_rate": 0.5}' to see a failing verdict).
# Needs curl and jq (both on GitHub's and GitLab's standard runners).
set -euo pipefail

sha="${1:?usage: ci_call.sh GIT_SHA [PR]}"
pr="${2:-0}"
url="${LOCKGATE_URL:-http://127.0.0.1:8787}"
timeout="${PR_EVAL_TIMEOUT:-1800}"
extra="${PR_EVAL_PARAMS:-}"
[ -n "$extra" ] || extra='{}'
if [ -z "${LOCKGATE_TOKEN:-}" ]; then
    echo "ci_call.sh: set LOCKGATE_TOKEN (create one with: lockgate token create ci)" >&2
    exit 2
fi
auth="Authorization: Bearer ${LOCKGATE_TOKEN}"

# GET or POST $2 on the server; the body on stdout; exit 2 on any non-2xx answer.
call() {
    local method="$1" path="$2" data="${3:-}" out code
    out="$(mktemp)"
    if [ -n "$data" ]; then
        code="$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$url$path" \
            -H "$auth" -H 'Content-Type: application/json' -d "$data")" || code=000
    else
        code="$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$url$path" -H "$auth")" \
            || code=000
    fi
    if [ "${code:0:1}" != 2 ]; then
        echo "ci_call.sh: $method $url$path answered HTTP $code: $(cat "$out")" >&2
        rm -f "$out"
        exit 2
    fi
    cat "$out"
    rm -f "$out"
}

# The key makes a retried CI step get the same run back instead of a second one.
body="$(jq -nc --arg sha "$sha" --argjson pr "$pr" --argjson extra "$extra" \
    '{params: ({git_sha: $sha, pr: $pr} + $extra), key: "pr-\($pr)-\($sha)"}')"
run_id="$(call POST /api/v1/pipelines/pr_eval/runs "$body" | jq -r .run_id)"
echo "pr_eval for PR $pr at $sha: run $run_id ($url/runs/$run_id)"

deadline=$((SECONDS + timeout))
while :; do
    status="$(call GET "/api/v1/runs/$run_id" | jq -r .run.status)"
    case "$status" in
        succeeded | failed | gate_failed | cancelled | waiting) break ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "ci_call.sh: run $run_id is still $status after $timeout s" >&2
        exit 2
    fi
    sleep 1
done

# The verdict: each gate check with its value, from the run's reliability record.
record="$(call GET "/api/v1/runs/$run_id/record")"
jq -r '.gates[] | .checks[] |
    "  \(if .passed then "pass" else "FAIL" end)  \(.metric) \(.value * 1000 | round / 1000) \(.expression)"' \
    <<<"$record" || true
case "$status" in
    succeeded)
        echo "verdict: PASS (run $run_id)"
        exit 0
        ;;
    gate_failed)
        echo "verdict: FAIL: $(jq -r .run.error <<<"$record")"
        exit 1
        ;;
    *)
        echo "verdict: ERROR: run $run_id ended $status: $(jq -r .run.error <<<"$record")" >&2
        exit 2
        ;;
esac
