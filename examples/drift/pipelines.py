"""Drift: a downstream pipeline refuses a stale dataset version and pages, instead of training.

    drift_ingest:  land_transcripts                      -> dataset:transcripts@N
    drift_train:   dataset:transcripts (latest) -> train_router -> model:support-router@M
                   max_input_age="36h": older input -> the run fails before any task runs

`drift_train` retrains the model that routes a customer's question to the team
of its product area, every morning at 06:00 UTC, from the latest version of
`dataset:transcripts`. That version is written every night by the ingest
(`nightly_eval` in the demo project; here `drift_ingest` stands in for it and
writes the same rows for a day). When the ingest silently stops, nothing
fails: the schedule keeps firing, and the model keeps being retrained on the
same old data while customers' questions move on. That is silent drift.

`max_input_age="36h"` turns it into a loud failure: a run that would consume a
version older than 36 hours (one missed night plus slack) fails when it is
created, before any task runs, naming the version and its age, and the
`[[alerts]]` rule in lockgate.toml pages on the `stale_input` event.

Run it from this directory:

    ../../.venv/bin/lockgate run drift_ingest -p day=2026-11-24   # fresh data
    ../../.venv/bin/lockgate run drift_train                      # trains on it

Two days later without an ingest, `lockgate run drift_train` fails with
`stale input: dataset:transcripts@1 is 2d 0h old (max_input_age 1d 12h)` and
pages; `lockgate run drift_ingest -p day=...` (the fix) makes it run again.
"""

from __future__ import annotations

import hashlib

import lockgate as lg
from lockgate.demo.corpus import transcripts

#: Nightly data is at most ~26 h old when the 06:00 run starts; 36 h tolerates a
#: late ingest but not a missed night.
MAX_INPUT_AGE = "36h"

#: Share of transcripts kept out of training to measure the router on.
HOLDOUT = 0.25


@lg.task(retries=2, retry_delay=1)
def land_transcripts(day: str) -> lg.Dataset:
    """One day of support transcripts as the next version of `dataset:transcripts`.

    The same rows as nightly_eval's `ingest` with its defaults, so in a project
    holding both the same day is the same version.
    """
    rows = transcripts(day)
    return lg.Dataset("transcripts", rows, metadata={"day": day, "rows": len(rows)})


@lg.pipeline
def drift_ingest(day: str = "2026-11-24"):
    """Stand-in for the nightly ingest: land one day of transcripts."""
    return land_transcripts(day)


def _held_out(row_id: str) -> bool:
    # By a hash of the row id, not by position: the split stays put across days and retries.
    return int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HOLDOUT


@lg.task
def train_router(rows: list) -> lg.Model:
    """Fit question -> product area (char n-gram TF-IDF, logistic regression) as a model version.

    Its metadata says which day it learned from and how well it routes the
    held-out questions, so `lockgate models list` shows what each version saw.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = [r for r in rows if not _held_out(r["id"])]
    test = [r for r in rows if _held_out(r["id"])]
    router = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)),
        LogisticRegression(max_iter=1000),
    )
    router.fit([r["question"] for r in train], [r["product_area"] for r in train])
    predicted = router.predict([r["question"] for r in test])
    accuracy = sum(p == r["product_area"] for p, r in zip(predicted, test, strict=True)) / len(test)
    days = sorted({r["day"] for r in rows})
    lg.current().logger.info(
        "router trained on %d questions of %s; holdout accuracy %.3f", len(train), days, accuracy
    )
    return lg.Model(
        "support-router",
        router,
        metadata={"days": days, "rows": len(train), "holdout_accuracy": round(accuracy, 4)},
    )


@lg.pipeline(schedule="0 6 * * *", timezone="UTC", max_input_age=MAX_INPUT_AGE)
def drift_train():
    """Retrain the router on the latest transcripts; refuse them when older than 36 h."""
    return train_router(lg.Dataset.ref("transcripts"))
