"""The per-pull-request eval suite: CI triggers it over HTTP with a Git SHA and reads a verdict.

    CI job --POST /api/v1/pipelines/pr_eval/runs {"git_sha", "pr"}--> lockgate server
        answer_eval_set -> evaluate (groundedness, context relevance, task completion,
                           per product area) -> gate -> verdict
    CI job <--GET /api/v1/runs/{id} until it ends, then /record-- exit 0 (pass) / 1 (fail)

Every pull request is scored on the same fixed eval set (60 support questions
from `lockgate.demo.corpus`, each with its retrieved context and the phrase a
complete answer must contain), so scores are comparable across PRs and a
regression blocks the merge instead of reaching users. The run carries the
PR's SHA and number as parameters; re-triggering the same PR and SHA returns
the same run (the CI script sends an idempotency key).

The bot under test is simulated, deterministically: it answers each question
with the help-centre article's answer, except for a `wrong_answer_rate` share
of questions, which it answers with the answer of an article it did not retrieve (fluent,
but unsupported by the context: what a broken retriever or prompt change
does). In a real project `answer_eval_set` would build the bot at `git_sha`;
here `wrong_answer_rate` stands in for the PR's change, so the failing verdict
can be shown: `ci_call.sh` passes it through `PR_EVAL_PARAMS`.

Run it: `lockgate server` in this directory, a token from `lockgate token
create ci`, then `LOCKGATE_TOKEN=... ./ci_call.sh <sha> <pr>` (README.md).
Without a server: `lockgate run pipelines.py:pr_eval -p git_sha=4f2a9c1`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import lockgate as lg
from lockgate import evals
from lockgate.demo.corpus import articles, transcripts

#: The fixed eval set: the same questions for every pull request.
EVAL_DAY = "2026-11-01"
EVAL_SIZE = 60

#: What a merge needs. Groundedness and task completion are about the answers;
#: context relevance is about retrieval, which returns the right article plus one
#: distractor, so about half of the passages are relevant by construction.
CHECKS = {
    "groundedness": ">= 0.85",
    "task_completion": ">= 0.85",
    "context_relevance": ">= 0.4",
}


def _share(key: str) -> float:
    """A stable number in [0, 1) for `key` (the same on every machine and run)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8


@lg.task(retries=1, retry_delay=0.5)
def answer_eval_set(git_sha: str, wrong_answer_rate: float) -> list[dict[str, Any]]:
    """The bot under test answers the fixed eval set: one row per question, with its answer."""
    if not 0.0 <= wrong_answer_rate <= 1.0:
        raise ValueError(f"wrong_answer_rate must be between 0 and 1, got {wrong_answer_rate}")
    rows = transcripts(EVAL_DAY, n=EVAL_SIZE, hallucination_rate=0.0)
    answered = []
    for row in rows:
        answer = row["answer"]
        if _share(row["id"]) < wrong_answer_rate:
            # An article the retriever did not return: fluent, confident, unsupported here.
            answer = next(
                article.answer
                for article in articles()
                if article.language == row["language"]
                and article.area != row["product_area"]
                and article.text not in row["context"]
            )
        answered.append({**row, "answer": answer})
    lg.current().logger.info("answered %d questions for %s", len(answered), git_sha)
    return answered


@lg.task
def verdict(scores: dict[str, Any], git_sha: str, pr: int) -> dict[str, Any]:
    """What the CI job reports: the SHA, the PR and the scores that passed the gate."""
    return {
        "git_sha": git_sha,
        "pr": pr,
        "passed": True,
        "metrics": scores["metrics"],
        "cohorts": {name: c["metrics"] for name, c in scores["cohorts"].items()},
    }


@lg.pipeline(max_active_runs=4)
def pr_eval(git_sha: str, pr: int = 0, wrong_answer_rate: float = 0.0):
    """Score the bot at `git_sha` on the fixed eval set; the run fails its gate on a regression."""
    rows = answer_eval_set(git_sha, wrong_answer_rate)
    scores = lg.evaluate(
        rows,
        [evals.Groundedness(), evals.ContextRelevance(), evals.TaskCompletion()],
        by="product_area",
    )
    return verdict(lg.gate(scores, CHECKS), git_sha, pr)
