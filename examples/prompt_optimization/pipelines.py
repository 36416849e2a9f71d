"""Prompt optimization: answer-template candidates compete; production moves only for a real win.

    eval_set -> retrieve ──────────────┐
    draft.map(variants) -> score.map(prompts, rows) -> choose -> gate -> register -> promote
                                                       winner ──────────┘             -> announce

Several versions of the support bot's answer template are stored as
`prompt:answer` versions (`draft`, one per variant) and scored on the same
eval set with `.map`: each question's passage is retrieved from the
help-centre knowledge base with all-MiniLM-L6-v2 (numpy cosine top-1), and a
deterministic answerer fills the template with it (no LLM: the same inputs give
the same answers, so a score difference is the template's doing). Groundedness
and TaskCompletion score the answers; their mean is `quality`.

The best candidate goes through a gate relative to the registry alias:
`quality >= production + 0.02`. Only a candidate that beats the prompt now in
production by that margin is registered as a version of `answer-prompt` and
promoted to `production`; otherwise the run ends `gate_failed` and the alias
stays where it was. Either way the reliability record names the prompt
versions, the baseline it was compared with and the decision.

Why this matters: prompt edits ship silently. A rewrite that reads better but
grounds fewer answers, or one that is merely as good, must not replace what
production serves, and a reviewer must be able to see afterwards which prompt
version answered and why it was chosen.

Run it (the MiniLM model ships with `lockgate[llm]`; nothing is downloaded):

    cd examples/prompt_optimization
    ../../.venv/bin/lockgate run prompt_optimization                  # promotes "quote"
    ../../.venv/bin/lockgate run prompt_optimization \\
        -p variants='["first_sentence", "truncate", "ignore"]'        # gate_failed: no win
    ../../.venv/bin/lockgate models show answer-prompt
"""

from __future__ import annotations

import re
from typing import Any

import lockgate as lg
from lockgate import evals
from lockgate.demo.corpus import knowledge_base, transcripts

PROMPT = "answer"
REGISTRY = "answer-prompt"
#: The candidate templates. `{passage}` is the retrieved article, `{first_sentence}` its
#: first sentence, `{question}` the customer's question; `{passage:.45}` keeps 45 characters.
TEMPLATES = {
    # Quotes the whole passage: grounded and complete.
    "quote": "According to our help centre: {passage}",
    # The passage's first sentence: grounded, sometimes misses the detail asked for.
    "first_sentence": "{first_sentence}",
    # Cuts the passage mid-sentence: mostly grounded, often loses the answer.
    "truncate": "{passage:.45}...",
    # Ignores the passage: polite, useless.
    "ignore": (
        'Thanks for your question about "{question}"! A specialist will reply by email '
        "within one business day."
    ),
}
VARIANTS = tuple(TEMPLATES)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def fill(template: str, question: str, passage: str) -> str:
    """The deterministic answerer: the template with the question and the retrieved passage."""
    first_sentence = _SENTENCE_END.split(passage.strip(), maxsplit=1)[0]
    return template.format(question=question, passage=passage, first_sentence=first_sentence)


@lg.task
def eval_set(day: str, n: int) -> lg.Dataset:
    """The questions every candidate answers, with the phrase a complete answer contains."""
    rows = [
        {
            "id": r["id"],
            "question": r["question"],
            "reference": r["reference"],
            "article_id": r["article_id"],
            "language": r["language"],
        }
        for r in transcripts(day, n=n)
    ]
    return lg.Dataset("answer-evalset", rows, metadata={"day": day, "rows": len(rows)})


@lg.task(retries=1)
def retrieve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attach each question's top-1 passage by MiniLM cosine similarity over the knowledge base."""
    from lockgate.evals.embeddings import embed

    articles = knowledge_base()
    passages = embed([a["text"] for a in articles])
    distinct = list(dict.fromkeys(r["question"] for r in rows))
    best = (embed(distinct) @ passages.T).argmax(axis=1)
    top = {q: articles[int(best[i])] for i, q in enumerate(distinct)}
    return [
        {**r, "context": top[r["question"]]["text"], "retrieved": top[r["question"]]["id"]}
        for r in rows
    ]


@lg.task
def draft(variant: str) -> lg.Prompt:
    """Store one candidate template as a version of prompt `answer` (same text: same version)."""
    if variant not in TEMPLATES:
        raise ValueError(
            f"unknown prompt variant {variant!r}; pass some of {list(TEMPLATES)} "
            '(e.g. -p variants=\'["quote", "truncate"]\')'
        )
    return lg.Prompt(PROMPT, TEMPLATES[variant], metadata={"variant": variant})


@lg.task
def score(template: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Answer every question with the template and score the answers, overall and per language."""
    answered = [{**r, "answer": fill(template, r["question"], r["context"])} for r in rows]
    scores = evals.evaluate(answered, [evals.Groundedness(), evals.TaskCompletion()], by="language")
    metrics = dict(scores["metrics"])
    metrics["quality"] = (metrics["groundedness"] + metrics["task_completion"]) / 2
    return {
        "prompt": template,
        "metrics": metrics,
        "n": scores["n"],
        "cohorts": scores["cohorts"],
        "method": scores["details"]["groundedness"]["method"],
        "examples": [{"question": a["question"], "answer": a["answer"]} for a in answered[:3]],
    }


@lg.task
def choose(scored: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """The candidate with the best quality (the first listed wins a tie), and the whole table."""
    table = [{"variant": v, "metrics": s["metrics"]} for v, s in zip(variants, scored, strict=True)]
    best = max(range(len(scored)), key=lambda i: (scored[i]["metrics"]["quality"], -i))
    lg.current().logger.info(
        "candidates: %s",
        ", ".join(f"{t['variant']} {t['metrics']['quality']:.3f}" for t in table),
    )
    return {
        "metrics": scored[best]["metrics"],
        "variant": variants[best],
        "prompt": scored[best]["prompt"],
        "candidates": table,
    }


@lg.task
def winner(choice: dict[str, Any]) -> str:
    """The best template's text: the artifact the registry version points at."""
    text: str = choice["prompt"]
    return text


@lg.task
def announce(prompt: str, choice: dict[str, Any]) -> str:
    """One line for the team channel, once the alias has moved."""
    metrics = choice["metrics"]
    return (
        f"{REGISTRY}@production is now the {choice['variant']!r} template: quality "
        f"{metrics['quality']:.3f} (groundedness {metrics['groundedness']:.3f}, "
        f"task completion {metrics['task_completion']:.3f}); {len(prompt)} characters"
    )


@lg.pipeline
def prompt_optimization(day: str = "2026-11-24", n: int = 60, variants: tuple = VARIANTS):
    """Score every variant on one eval set; promote the best only if it beats production."""
    rows = retrieve(eval_set(day, n))
    prompts = draft.map(variants)
    choice = choose(score.map(prompts, rows=rows), variants)
    checked = lg.gate(
        choice,
        {"quality": ">= production + 0.02", "groundedness": ">= 0.8"},
        model=REGISTRY,
        name="beats_production",
    )
    registered = lg.register(winner(choice), name=REGISTRY, scores=checked)
    promoted = lg.promote(registered, name=REGISTRY, alias="production")
    return announce(promoted, checked)
