"""Quickstart: an ML pipeline on scikit-learn's bundled breast-cancer data.

    ingest -> featurize -> train -> predict -> evaluate -> gate -> register -> promote
                                                         evaluate -> report

ingest stores the day's snapshot as a dataset version; the gate lets the model
through only if it is accurate enough and no worse than the model in production;
register records it in the model registry with its scores; promote moves the
`production` alias to it. Run it with `lockgate run pipelines.py:nightly -p
day=2026-11-24` (or `make demo` from the repository root), then read the run's
reliability record with `lockgate record latest`. Nothing is downloaded: the data
ships with scikit-learn.
"""

from __future__ import annotations

import hashlib

import numpy as np

import lockgate as lg
from lockgate import evals


def _seed(day: str) -> int:
    return int(hashlib.sha256(day.encode()).hexdigest()[:8], 16)


@lg.task(retries=2, retry_delay=0.5)
def ingest(day: str) -> lg.Dataset:
    """Load the day's snapshot, features and label in one array (label last), as a version."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    table = np.column_stack([data.data, data.target]).astype(np.float64)
    rng = np.random.default_rng(_seed(day))
    lg.current().logger.info("ingested %d rows for %s", len(table), day)
    return lg.Dataset("breast-cancer", table[rng.permutation(len(table))], metadata={"day": day})


@lg.task
def featurize(table: np.ndarray, holdout: float) -> dict:
    """Standardize features with training statistics and split off a holdout set."""
    cut = int(len(table) * (1 - holdout))
    x, y = table[:, :-1], table[:, -1].astype(int)
    mean, std = x[:cut].mean(axis=0), x[:cut].std(axis=0) + 1e-9
    x = (x - mean) / std
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}


@lg.task
def train(features: dict, c: float):
    """Fit a logistic regression."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=1000)
    return model.fit(features["x_train"], features["y_train"])


@lg.task
def predict(model, features: dict) -> list:
    """One row per holdout example: label, predicted class, predicted probability."""
    proba = model.predict_proba(features["x_test"])[:, 1]
    return [
        {"label": int(label), "prediction": int(p >= 0.5), "score": float(p)}
        for label, p in zip(features["y_test"], proba, strict=True)
    ]


@lg.task
def report(scores: dict, day: str) -> str:
    """A one-paragraph summary for the team channel."""
    metrics = scores["metrics"]
    return (
        f"nightly model for {day}: accuracy {metrics['accuracy']:.3f}, "
        f"ROC AUC {metrics['roc_auc']:.3f} on {scores['n']} holdout rows"
    )


@lg.pipeline
def nightly(day: str = "2026-11-25", c: float = 1.0, holdout: float = 0.25):
    """Ingest, featurize, train, evaluate; ship the model only through the gate."""
    table = ingest(day)
    features = featurize(table, holdout)
    model = train(features, c=c)
    scores = lg.evaluate(predict(model, features), [evals.Accuracy(), evals.RocAuc()])
    checked = lg.gate(
        scores,
        {"accuracy": ">= 0.9", "roc_auc": ">= production - 0.02"},
        model="breast-cancer-clf",
    )
    registered = lg.register(model, name="breast-cancer-clf", scores=checked)
    lg.promote(registered, name="breast-cancer-clf", alias="production")
    return report(scores, day)
