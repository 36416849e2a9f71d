"""The synthetic support corpus: deterministic per day, with the cohorts and faults it promises."""

from __future__ import annotations

import json

import pytest

from lockgate.demo.corpus import AREAS, LANGUAGES, articles, knowledge_base, transcripts


def test_the_same_day_gives_the_same_transcripts_and_another_day_others():
    assert transcripts("2026-11-24") == transcripts("2026-11-24")
    assert transcripts("2026-11-24") != transcripts("2026-11-25")


def test_every_row_has_its_cohorts_and_a_context_holding_the_right_article():
    by_id = {a.id: a for a in articles()}
    rows = transcripts("2026-11-24", 300, hallucination_rate=0.0)
    assert {r["product_area"] for r in rows} == set(AREAS)
    assert {r["language"] for r in rows} == set(LANGUAGES)
    for row in rows:
        article = by_id[row["article_id"]]
        assert article.text in row["context"] and len(row["context"]) == 2
        assert row["answer"] == article.answer
        assert row["reference"].lower() in row["answer"].lower()
    json.dumps(rows)  # rows are stored as JSON artifacts


def test_hallucinations_are_answers_the_context_does_not_support():
    rows = transcripts("2026-11-24", 400, hallucination_rate=0.25)
    by_id = {a.id: a for a in articles()}
    wrong = [r for r in rows if r["answer"] != by_id[r["article_id"]].answer]
    assert 0.15 < len(wrong) / len(rows) < 0.35
    assert all(r["answer"] not in " ".join(r["context"]) for r in wrong)


def test_the_knowledge_base_lists_every_article_once():
    rows = knowledge_base()
    assert len({r["id"] for r in rows}) == len(rows) == len(articles())
    assert {r["language"] for r in rows} == set(LANGUAGES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 0}, "n must be at least 1"), ({"hallucination_rate": 1.5}, "between 0 and 1")],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        transcripts("2026-11-24", **kwargs)
