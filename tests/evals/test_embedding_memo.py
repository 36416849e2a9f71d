"""Each distinct text is encoded once per process: per-cohort scoring reuses the vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lockgate import evals
from lockgate.evals import embeddings


class Counting:
    """Wraps the real model and records every text it is asked to encode."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.encoded: list[str] = []

    def encode(self, texts: list[str], **kwargs: Any) -> Any:
        self.encoded.extend(texts)
        return self.model.encode(texts, **kwargs)


ROWS = [
    {
        "cohort": "billing" if i % 2 else "shipping",
        "question": f"How long does shipping take to zone {i % 3}?",
        "context": ["Standard shipping takes five to seven business days."],
        "answer": "Standard shipping takes five to seven business days.",
        "reference": "five to seven business days",
    }
    for i in range(12)
]


@pytest.fixture
def counting(minilm: Any, monkeypatch: pytest.MonkeyPatch) -> Counting:
    model = Counting(minilm)
    monkeypatch.setattr(embeddings, "_model", model)
    monkeypatch.setenv(embeddings.ENV, "embeddings")
    return model


def test_scoring_by_cohort_encodes_each_distinct_text_once(counting: Counting) -> None:
    suite = [evals.Groundedness(), evals.ContextRelevance(), evals.TaskCompletion()]
    scores = evals.evaluate(ROWS, suite, by="cohort")
    assert set(scores["cohorts"]) == {"billing", "shipping"}
    assert len(counting.encoded) == len(set(counting.encoded))  # nothing encoded twice
    before = len(counting.encoded)
    again = evals.evaluate(ROWS, suite, by="cohort")
    assert len(counting.encoded) == before and again["metrics"] == scores["metrics"]


def test_remembered_vectors_equal_fresh_ones_and_the_memo_is_bounded(
    counting: Counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["Refunds take five business days.", "Bonjour", "Refunds take five business days."]
    sim = embeddings.Embeddings(counting)
    first = sim.vectors(texts)
    assert first.shape == (3, 384) and np.array_equal(first[0], first[2])
    fresh = counting.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(sim.vectors(texts), fresh, atol=1e-5)
    monkeypatch.setattr(embeddings, "MEMO_LIMIT", 2)
    sim.vectors(["one", "two", "three"])
    assert len(embeddings._memo) == 2 and "three" in embeddings._memo
