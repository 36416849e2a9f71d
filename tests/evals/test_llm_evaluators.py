"""Groundedness, ContextRelevance and TaskCompletion on real text, with both methods.

The hand-written support-desk cases below are the ones the default thresholds
were calibrated on: an answer copied from the context must score high, an
invented or unrelated one low, with sentence embeddings and with the
lexical-overlap fallback alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from lockgate.errors import LockgateWarning
from lockgate.evals import (
    ContextRelevance,
    EvaluationError,
    Groundedness,
    TaskCompletion,
    embeddings,
)
from lockgate.evals.llm import DEFAULT_THRESHOLDS
from lockgate.evals.text import sentences

CASES = [
    {
        "question": "How do I reset my password?",
        "context": [
            "To reset your password, open Settings and choose Security. Click 'Reset password' "
            "and follow the link we email you. The link expires after 24 hours.",
            "Our offices are closed on public holidays.",
        ],
        "copied": "To reset your password, open Settings and choose Security. Click 'Reset "
        "password' and follow the link we email you.",
        "invented": "Call our hotline at 555-0199 and an agent will reset it over the phone. "
        "You will also get a free month of premium.",
        "unrelated": "The Eiffel Tower is in Paris. Bananas are rich in potassium.",
    },
    {
        "question": "What is the refund policy for annual plans?",
        "context": [
            "Annual plans can be refunded in full within 30 days of purchase. After 30 days, "
            "refunds are prorated for the unused months.",
            "Monthly plans are not refundable but can be cancelled at any time.",
        ],
        "copied": "Annual plans can be refunded in full within 30 days of purchase.",
        "invented": "Annual plans are never refundable. We only offer store credit after a "
        "90 day waiting period.",
        "unrelated": "Photosynthesis converts light into chemical energy in plants.",
    },
    {
        "question": "Which browsers are supported?",
        "context": "The web app supports the latest two versions of Chrome, Firefox, Safari "
        "and Edge. Internet Explorer is not supported.",
        "copied": "The web app supports the latest two versions of Chrome, Firefox, Safari "
        "and Edge.",
        "invented": "Only Opera is supported, and you must install our desktop plugin first.",
        "unrelated": "The stock market closed higher today after strong earnings reports.",
    },
    {
        "question": "How long does shipping to Canada take?",
        "context": [
            "Orders to Canada ship with standard post and arrive in 5 to 8 business days. "
            "Express shipping takes 2 business days and costs $15."
        ],
        "copied": "Orders to Canada ship with standard post and arrive in 5 to 8 business days.",
        "invented": "Shipping to Canada is free and always arrives the next morning by drone.",
        "unrelated": "Mount Everest is the highest mountain above sea level.",
    },
]
IRRELEVANT = [
    "Bananas are rich in potassium and grow in tropical climates.",
    "Our company was founded in 1998 in Oslo and has 300 employees.",
]


def rows(kind: str) -> list[dict]:
    return [{**case, "answer": case[kind]} for case in CASES]


def test_groundedness_copied_answers_are_grounded(method):
    score = Groundedness().evaluate(rows("copied"))
    assert score.value == 1.0 and score.n == len(CASES)
    assert score.details["method"] == method
    assert score.details["threshold"] == DEFAULT_THRESHOLDS["groundedness"][method]
    assert score.details["unsupported"] == 0


@pytest.mark.parametrize("kind", ["invented", "unrelated"])
def test_groundedness_invented_or_unrelated_answers_are_not(method, kind):
    score = Groundedness().evaluate(rows(kind))
    assert score.value == 0.0
    assert score.details["method"] == method
    unsupported = {row["row"]: row["unsupported"] for row in score.details["rows"]}
    assert unsupported == {i: sentences(case[kind]) for i, case in enumerate(CASES)}


def test_groundedness_is_the_share_of_supported_sentences(method):
    case = CASES[1]
    answer = f"{case['copied']} We also give every customer a free tablet."
    score = Groundedness().evaluate([{**case, "answer": answer}])
    assert score.value == 0.5
    (row,) = score.details["rows"]
    assert row["sentences"] == 2
    assert row["unsupported"] == ["We also give every customer a free tablet."]


def test_groundedness_keeps_the_worst_rows_first():
    mixed = [
        {**CASES[0], "answer": CASES[0]["copied"]},
        {**CASES[1], "answer": CASES[1]["unrelated"]},
    ]
    score = Groundedness(threshold=0.99).evaluate(mixed)
    assert [r["row"] for r in score.details["rows"]] == [1, 0]


def test_groundedness_with_embeddings_accepts_a_paraphrase(with_embeddings):
    row = {
        **CASES[3],
        "answer": "Standard delivery to Canada takes between five and eight working days.",
    }
    assert Groundedness().evaluate([row]).value == 1.0


def test_empty_answer_or_context_is_not_grounded(method):
    score = Groundedness().evaluate(
        [{"answer": None, "context": "x"}, {"answer": "Paris is in France.", "context": None}]
    )
    assert score.value == 0.0
    assert any(r.get("note") == "empty answer: scored 0.0" for r in score.details["rows"])


def test_context_relevance_separates_relevant_from_irrelevant_passages(method):
    # Everything retrieved is on topic except "Our offices are closed on public holidays."
    retrieved = [{"question": c["question"], "context": c["context"]} for c in CASES]
    assert ContextRelevance().evaluate(retrieved).value == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    first_passage_only = [
        {"question": c["question"], "context": c["context"][:1]}
        for c in CASES
        if isinstance(c["context"], list)
    ]
    assert ContextRelevance().evaluate(first_passage_only).value == 1.0
    off_topic = [{"question": c["question"], "context": IRRELEVANT} for c in CASES]
    score = ContextRelevance().evaluate(off_topic)
    assert score.value == 0.0
    assert score.details["method"] == method
    assert score.details["rows"][0]["irrelevant"] == IRRELEVANT


def test_context_relevance_is_the_share_of_relevant_passages(method):
    case = CASES[3]
    score = ContextRelevance().evaluate(
        [{"question": case["question"], "context": [*case["context"], *IRRELEVANT]}]
    )
    assert score.value == pytest.approx(1 / 3)
    assert len(score.details["rows"][0]["similarities"]) == 3


def test_task_completion_against_a_reference(method):
    reference = [
        {"answer": "You can request a refund within 30 days.", "reference": "30 days"},
        {"answer": "The capital of France is Paris.", "reference": ["Paris", "paris, france"]},
        {"answer": "Refunds are possible for 90 days.", "reference": "30 days"},
        {"answer": "Sorry, I cannot help with that.", "reference": "Reset it in Settings."},
        {"answer": None, "reference": "anything"},
    ]
    score = TaskCompletion().evaluate(reference)
    assert score.value == pytest.approx(2 / 5)
    assert score.details["method"] == method
    assert sorted(r["row"] for r in score.details["rows"]) == [2, 3, 4]


def test_task_completion_by_similarity_with_embeddings(with_embeddings):
    rows = [
        {
            "answer": "Open Settings, then Security, and click reset.",
            "reference": "Reset it from Settings > Security.",
        },
        {
            "answer": "Call support to reset your password.",
            "reference": "Reset it from Settings > Security.",
        },
    ]
    score = TaskCompletion().evaluate(rows)
    assert score.value == 0.5
    assert [r["row"] for r in score.details["rows"]] == [1]


@pytest.mark.parametrize(
    ("match", "expected"),
    [("exact", [1, 0, 0]), ("contains", [1, 1, 0])],
)
def test_task_completion_exact_and_contains_need_no_model(match, expected, monkeypatch):
    monkeypatch.setattr(embeddings, "backend", lambda: pytest.fail("similarity was used"))
    rows = [
        {"answer": "  Paris! ", "reference": "paris"},
        {"answer": "It is Paris.", "reference": "Paris"},
        {"answer": "Parisian", "reference": "Paris"},
    ]
    score = TaskCompletion(match=match).evaluate(rows)
    assert score.value == pytest.approx(sum(expected) / 3)
    assert score.details["method"] == ("exact-match" if match == "exact" else "contains")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"contains": ["refund", "30 DAYS"]}, [True, False, False]),
        ({"contains_any": ["refund", "credit"]}, [True, True, False]),
        ({"not_contains": ["sorry"]}, [True, True, False]),
        ({"regex": r"\b\d+ days\b"}, [True, True, False]),
        ({"equals": "sorry i cannot help"}, [False, False, True]),
        ({"contains": ["refund"], "regex": "90"}, [False, False, False]),
    ],
)
def test_task_completion_rules(rule, expected):
    answers = [
        "You get a full refund within 30 days.",
        "Store credit is given after 90 days.",
        "Sorry, I cannot help!",
    ]
    score = TaskCompletion(rule=rule).evaluate([{"answer": a} for a in answers])
    assert score.value == pytest.approx(sum(expected) / 3)
    assert score.details["method"] == "rule" and score.details["rule"] == rule
    assert sorted(r["row"] for r in score.details["rows"]) == [
        i for i, ok in enumerate(expected) if not ok
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"startswith": "Hi"}, r"unknown rule 'startswith'; rules are contains, contains_any"),
        ({"regex": "("}, r"rule 'regex' '\(' is not a valid regular expression"),
        ({"contains": "refund"}, r"rule 'contains' needs a list of non-empty strs"),
        ({}, r"must be a non-empty dict"),
    ],
)
def test_bad_rules_are_refused_at_construction(rule, message):
    with pytest.raises(EvaluationError, match=message):
        TaskCompletion(rule=rule)


def test_bad_text_values_and_missing_columns_name_the_fix():
    with pytest.raises(EvaluationError, match=r"groundedness: row 0 has context=3; expected a str"):
        Groundedness().evaluate([{"answer": "a", "context": 3}])
    with pytest.raises(EvaluationError, match=r"row 0 has no column 'question'.*question=\.\.\."):
        ContextRelevance().evaluate([{"query": "q", "context": "c"}])
    with pytest.raises(EvaluationError, match=r"threshold=2 must be a similarity"):
        Groundedness(threshold=2)


def test_forced_fallback_names_the_method_and_warns_once(monkeypatch):
    monkeypatch.setenv(embeddings.ENV, "lexical")
    embeddings.reset()
    row = {**CASES[0], "answer": CASES[0]["copied"]}
    with pytest.warns(LockgateWarning, match=r"LOCKGATE_EVALS_EMBEDDINGS=lexical forces it"):
        first = Groundedness().evaluate([row])
    assert first.details["method"] == (
        "lexical-overlap (fallback: pip install 'lockgate[llm]' for embeddings)"
    )
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        ContextRelevance().evaluate([row])
        TaskCompletion().evaluate([{"answer": "a", "reference": "b"}])
    assert not [w for w in later if issubclass(w.category, LockgateWarning)]


def test_missing_extra_falls_back_with_the_reason(monkeypatch):
    # What a base install sees: sentence-transformers cannot be imported.
    monkeypatch.setattr(embeddings, "_model", None)
    monkeypatch.setattr(embeddings, "_load_error", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    embeddings.reset()
    row = {**CASES[2], "answer": CASES[2]["copied"]}
    with pytest.warns(
        LockgateWarning, match=r"embeddings are unavailable: .*sentence_transformers"
    ):
        score = Groundedness().evaluate([row])
    assert score.details["method"] == embeddings.METHOD_LEXICAL
    assert score.value == 1.0


def test_requiring_embeddings_without_the_extra_is_an_error(monkeypatch):
    monkeypatch.setattr(embeddings, "_model", None)
    monkeypatch.setattr(embeddings, "_load_error", "ModuleNotFoundError: no torch")
    monkeypatch.setenv(embeddings.ENV, "embeddings")
    with pytest.raises(EvaluationError, match=r"cannot load: ModuleNotFoundError.*pip install"):
        Groundedness().evaluate([{"answer": "a", "context": "a"}])
    with pytest.raises(EvaluationError, match=r"embed\(\) needs the all-MiniLM-L6-v2 model"):
        embeddings.embed(["a"])


def test_unknown_method_setting_is_an_error(monkeypatch):
    monkeypatch.setenv(embeddings.ENV, "bert")
    with pytest.raises(EvaluationError, match=r"LOCKGATE_EVALS_EMBEDDINGS='bert' is not one of"):
        Groundedness().evaluate([{"answer": "a", "context": "a"}])


def test_embed_returns_unit_vectors_and_similar_texts_are_closer(minilm):
    vectors = embeddings.embed(["reset my password", "change the password", "banana bread"])
    assert vectors.shape == (3, 384)
    norms = (vectors**2).sum(axis=1)
    assert norms == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    near, far = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert near > far + 0.3


def test_the_model_loads_without_touching_the_network(minilm):
    code = (
        "import socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise OSError('lockgate tried to reach the network')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import os\n"
        "from lockgate.evals import embeddings\n"
        "print(embeddings.method(), os.environ['HF_HUB_OFFLINE'],"
        " os.environ['TRANSFORMERS_OFFLINE'])\n"
    )
    env = {**os.environ, embeddings.ENV: "embeddings"}
    env.pop("HF_HUB_OFFLINE", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [embeddings.METHOD_EMBEDDINGS, "1", "1"]
