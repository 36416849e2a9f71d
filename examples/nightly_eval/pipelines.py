"""Nightly eval: score a day of support-bot transcripts, per cohort, behind a gate that pages.

    pick_day -> ingest -> evaluate_product_area -> groundedness_gate -> report
                       -> evaluate_language  ----> scorecard (per-cohort scores, written back)

Every night at 02:00 UTC `ingest` stores the previous day's support transcripts
(question, retrieved context, the bot's answer, cohorts) as a new version of
`dataset:transcripts`, which other pipelines consume. Groundedness,
ContextRelevance and TaskCompletion score the bot's answers over the whole day
and per product area and per language; `scorecard` writes one row per cohort
back as `dataset:transcript-scores`, whatever the verdict, because a bad night's
numbers are the ones somebody needs to read. `groundedness_gate` passes only
if at least 0.85 of the answer sentences are supported by the retrieved
context; when it fails the run ends `gate_failed`, `report` (the all-clear
for the team channel) never runs, and the `[[alerts]]` rule in lockgate.toml
posts the failed checks to a webhook instead.

Run it from this directory:

    ../../.venv/bin/lockgate run nightly_eval                          # a good night
    ../../.venv/bin/lockgate run nightly_eval -p hallucination_rate=0.3  # the bot makes things up

`hallucination_rate` sets how many answers state something their context does
not say (the synthetic corpus in `lockgate.demo.corpus` makes them); at 0.3 the
gate fails. Then `lockgate record latest` shows the day, the scores, the
gate's checks and the alert. `lockgate server` runs it on its schedule.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import lockgate as lg
from lockgate import evals
from lockgate.demo.corpus import transcripts

#: The bot's answers must be supported by what retrieval gave it.
MIN_GROUNDEDNESS = 0.85

#: Scored over the whole day, then per product area and per language.
SUITE = [evals.Groundedness(), evals.ContextRelevance(), evals.TaskCompletion()]


@lg.task
def pick_day(day: str, logical_date: dt.date | None) -> str:
    """The day to ingest: `day` for a run by hand, the day before the tick for a scheduled one.

    A scheduled run stands for its tick (02:00 on `logical_date`), when the
    day before has just ended.
    """
    if logical_date is None:
        return day
    return (logical_date - dt.timedelta(days=1)).isoformat()


@lg.task(retries=2, retry_delay=1)
def ingest(day: str, n: int, hallucination_rate: float) -> lg.Dataset:
    """Store one day of support transcripts as the next version of `dataset:transcripts`."""
    rows = transcripts(day, n, hallucination_rate=hallucination_rate)
    lg.current().logger.info("ingested %d transcripts of %s", len(rows), day)
    return lg.Dataset("transcripts", rows, metadata={"day": day, "rows": len(rows)})


@lg.task
def scorecard(day: str, by_area: dict, by_language: dict) -> lg.Dataset:
    """One row per cohort (and one for the whole day) with every metric, as a dataset version.

    Written before the gate decides, so a failing night's numbers are kept too
    (`lockgate datasets show transcript-scores`).
    """
    rows: list[dict[str, Any]] = [
        {"day": day, "dimension": "all", "cohort": "all", "n": by_area["n"], **by_area["metrics"]}
    ]
    for dimension, scores in (("product_area", by_area), ("language", by_language)):
        for cohort, entry in scores["cohorts"].items():
            rows.append(
                {
                    "day": day,
                    "dimension": dimension,
                    "cohort": cohort,
                    "n": entry["n"],
                    **entry["metrics"],
                }
            )
    worst = min(rows, key=lambda row: row["groundedness"])
    lg.current().logger.info(
        "least grounded cohort of %s: %s=%s (%.3f)",
        day,
        worst["dimension"],
        worst["cohort"],
        worst["groundedness"],
    )
    return lg.Dataset("transcript-scores", rows, metadata={"day": day})


@lg.task
def report(scores: dict, by_language: dict, day: str) -> str:
    """The all-clear for the team channel; runs only behind a passing gate."""
    metrics = scores["metrics"]
    languages = ", ".join(
        f"{language} {entry['metrics']['groundedness']:.2f}"
        for language, entry in by_language["cohorts"].items()
    )
    return (
        f"nightly eval {day}: groundedness {metrics['groundedness']:.3f} ({languages}), "
        f"context relevance {metrics['context_relevance']:.3f}, "
        f"task completion {metrics['task_completion']:.3f} on {scores['n']} transcripts"
    )


@lg.pipeline(schedule="0 2 * * *", timezone="UTC", max_active_runs=1)
def nightly_eval(
    day: str = "2026-11-24",
    n: int = 120,
    hallucination_rate: float = 0.05,
    logical_date: dt.date | None = None,
):
    """Ingest a day of transcripts, score them per cohort, gate on groundedness, report."""
    the_day = pick_day(day, logical_date)
    rows = ingest(the_day, n=n, hallucination_rate=hallucination_rate)
    by_area = lg.evaluate(rows, SUITE, by="product_area", name="evaluate_product_area")
    by_language = lg.evaluate(rows, SUITE, by="language", name="evaluate_language")
    scorecard(the_day, by_area, by_language)
    checked = lg.gate(by_area, {"groundedness": f">= {MIN_GROUNDEDNESS}"}, name="groundedness_gate")
    return report(checked, by_language, the_day)
