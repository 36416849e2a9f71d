"""Evaluators for LLM and RAG outputs: Groundedness, ContextRelevance, TaskCompletion.

Rows hold text columns (defaults): `question`, `context` (one passage as a
str, or a list of passages; None is no context), `answer`, `reference` (a str
or a list of acceptable strs). A None answer is scored as an empty one.

Each evaluator scores every row 0..1, and its value is the mean over rows.
Similarities come from `lockgate.evals.embeddings` (all-MiniLM-L6-v2 sentence
embeddings, or the lexical-overlap fallback); every Score says which in
`details["method"]`, and `details["threshold"]` holds the threshold used.
`threshold=None` (the default) picks the calibrated default of the method in
use, `DEFAULT_THRESHOLDS`, because cosines of embeddings and of word counts
live on different scales. The defaults were calibrated on hand-written
support-desk examples (tests/evals/test_llm_evaluators.py) so that an answer
copied from the context passes and an unrelated or invented one fails, with
both methods (with embeddings, close paraphrases pass too). Measured on those
examples with the embeddings: copied 1.0, paraphrased 0.74-0.91, invented
on-topic claims 0.46-0.63, unrelated below 0.15 (groundedness 0.7); relevant
passages 0.66-0.83, off-topic ones below 0.15 (context relevance 0.4); correct
paraphrased answers 0.77-0.90 against the reference, wrong ones 0.37-0.71
(task completion 0.75). With word counts: copied 1.0, invented 0-0.45,
unrelated 0 (0.5); relevant 0.21-0.6, off-topic 0 (0.15); wrong answers at
most 0.35 (0.5).

Known limits, by design of similarity scoring: a sentence that contradicts
the context with the same words ("not refundable" against "refundable", 60
days against 30) looks supported to both methods; and pleasantries ("Hope
this helps!") count as unsupported sentences. The lexical fallback also
misses most paraphrases.

Per-row details keep the worst `ROW_DETAILS_LIMIT` rows (lowest value first)
with at most 5 offending sentences or passages each, cut to 200 characters, so
a Score stays small however many rows it covers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.errors import EvaluationError
from lockgate.evals.base import (
    Score,
    check_name,
    column,
    dataclass_spec,
    require_rows,
    worst_rows,
)
from lockgate.evals.embeddings import METHOD_EMBEDDINGS, METHOD_LEXICAL, Similarity, backend
from lockgate.evals.text import normalize, sentences

# metric type -> method -> threshold. See the module docstring for how they were chosen.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "groundedness": {METHOD_EMBEDDINGS: 0.7, METHOD_LEXICAL: 0.5},
    "context_relevance": {METHOD_EMBEDDINGS: 0.4, METHOD_LEXICAL: 0.15},
    "task_completion": {METHOD_EMBEDDINGS: 0.75, METHOD_LEXICAL: 0.5},
}
MATCHES = ("similarity", "contains", "exact")
RULE_KEYS = ("contains", "contains_any", "not_contains", "regex", "equals")
_SHOWN_PER_ROW = 5
_CUT = 200


def _cut(text: str) -> str:
    return text if len(text) <= _CUT else text[: _CUT - 1] + "…"


def _check_columns(owner: str, **columns: object) -> None:
    for param, value in columns.items():
        if not isinstance(value, str) or not value:
            raise EvaluationError(f"{owner}: {param}={value!r} must be a column name (a string)")


def _check_threshold(owner: str, threshold: object) -> None:
    if threshold is None:
        return
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not -1.0 <= threshold <= 1.0
    ):
        raise EvaluationError(
            f"{owner}: threshold={threshold!r} must be a similarity between -1 and 1, or None "
            "for the calibrated default of the method in use"
        )


def _texts(name: str, values: Sequence[Any], what: str, *, many: bool) -> list[list[str]]:
    """Each row's value as a list of strs; None is an empty list."""
    out: list[list[str]] = []
    for index, value in enumerate(values):
        if value is None:
            out.append([])
        elif isinstance(value, str):
            out.append([value])
        elif many and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            out.append(list(value))
        else:
            kind = "a str or a list of strs" if many else "a str"
            raise EvaluationError(
                f"{name}: row {index} has {what}={_cut(repr(value))}; expected {kind}"
            )
    return out


def _answers(name: str, rows: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    values = _texts(name, column(name, rows, key, "answer"), key, many=False)
    return [v[0] if v else "" for v in values]


def _units(passages: Sequence[str]) -> list[str]:
    """Passages and their sentences: what a claim or a question can match."""
    units = list(passages)
    for passage in passages:
        units.extend(sentences(passage))
    return list(dict.fromkeys(units))


def _threshold(kind: str, threshold: float | None, sim: Similarity) -> float:
    return float(threshold) if threshold is not None else DEFAULT_THRESHOLDS[kind][sim.method]


@dataclass(frozen=True, slots=True)
class Groundedness:
    """Share of answer sentences supported by the context.

    The answer is split into sentences; a sentence is supported when its best
    similarity to the context (each passage, and each sentence of each
    passage) reaches `threshold`. A row scores supported / all sentences; an
    empty answer scores 0.0. `details["rows"]` lists the unsupported sentences
    of the worst rows.

    Args:
        answer: the column with the response text.
        context: the column with the retrieved context (str or list of strs).
        threshold: similarity a sentence needs to count as supported; None for the
            method's calibrated default (`DEFAULT_THRESHOLDS`).
        name: the metric name in the scores.
    """

    answer: str = "answer"
    context: str = "context"
    threshold: float | None = None
    name: str = "groundedness"

    def __post_init__(self) -> None:
        check_name(self.name, "Groundedness")
        _check_columns(self.name, answer=self.answer, context=self.context)
        _check_threshold(self.name, self.threshold)

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows`; see the class docstring."""
        require_rows(self.name, rows)
        answers = _answers(self.name, rows, self.answer)
        contexts = _texts(
            self.name, column(self.name, rows, self.context, "context"), self.context, many=True
        )
        sim = backend()
        threshold = _threshold("groundedness", self.threshold, sim)
        claims = [sentences(a) for a in answers]
        best = sim.best(claims, [_units(c) for c in contexts])
        values, per_row, unsupported_total = [], [], 0
        for index, (sents, sims) in enumerate(zip(claims, best, strict=True)):
            unsupported = [s for s, v in zip(sents, sims, strict=True) if v < threshold]
            unsupported_total += len(unsupported)
            value = (len(sents) - len(unsupported)) / len(sents) if sents else 0.0
            values.append(value)
            entry: dict[str, Any] = {
                "row": index,
                "value": round(value, 4),
                "sentences": len(sents),
                "unsupported": [_cut(s) for s in unsupported[:_SHOWN_PER_ROW]],
            }
            if not sents:
                entry["note"] = "empty answer: scored 0.0"
            per_row.append(entry)
        details = {
            "method": sim.method,
            "threshold": threshold,
            "sentences": sum(map(len, claims)),
            "unsupported": unsupported_total,
            "rows": worst_rows(per_row),
        }
        return Score(sum(values) / len(values), len(rows), details)

    def spec(self) -> dict[str, Any]:
        """This evaluator as `{"type": "groundedness", "params": {...}}`."""
        return dataclass_spec("groundedness", self)


@dataclass(frozen=True, slots=True)
class ContextRelevance:
    """Share of retrieved context passages relevant to the question (context precision).

    A passage is relevant when the question's best similarity to it (the
    whole passage, or any one of its sentences, so a long passage holding the
    answer counts) reaches `threshold`. A row scores relevant / all passages;
    a row without context scores 0.0.

    Args:
        question: the column with the user's question.
        context: the column with the retrieved context (str or list of strs).
        threshold: similarity a passage needs to count as relevant; None for the
            method's calibrated default (`DEFAULT_THRESHOLDS`).
        name: the metric name in the scores.
    """

    question: str = "question"
    context: str = "context"
    threshold: float | None = None
    name: str = "context_relevance"

    def __post_init__(self) -> None:
        check_name(self.name, "ContextRelevance")
        _check_columns(self.name, question=self.question, context=self.context)
        _check_threshold(self.name, self.threshold)

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows`; see the class docstring."""
        require_rows(self.name, rows)
        questions = _texts(
            self.name, column(self.name, rows, self.question, "question"), self.question, many=False
        )
        contexts = _texts(
            self.name, column(self.name, rows, self.context, "context"), self.context, many=True
        )
        sim = backend()
        threshold = _threshold("context_relevance", self.threshold, sim)
        # One (question, passage) comparison per passage, batched over the whole set.
        owners, queries, candidates = [], [], []
        for index, (question, passages) in enumerate(zip(questions, contexts, strict=True)):
            for passage in passages:
                owners.append(index)
                queries.append(question)
                candidates.append(_units([passage]))
        best = [max(s, default=0.0) for s in sim.best(queries, candidates)]
        by_row: list[list[float]] = [[] for _ in rows]
        for index, value in zip(owners, best, strict=True):
            by_row[index].append(value)
        values, per_row = [], []
        for index, (passages, sims) in enumerate(zip(contexts, by_row, strict=True)):
            relevant = sum(1 for v in sims if v >= threshold)
            value = relevant / len(sims) if sims else 0.0
            values.append(value)
            per_row.append(
                {
                    "row": index,
                    "value": round(value, 4),
                    "passages": len(passages),
                    "similarities": [round(v, 3) for v in sims[:10]],
                    "irrelevant": [
                        _cut(p) for p, v in zip(passages, sims, strict=True) if v < threshold
                    ][:_SHOWN_PER_ROW],
                }
            )
        details = {"method": sim.method, "threshold": threshold, "rows": worst_rows(per_row)}
        return Score(sum(values) / len(values), len(rows), details)

    def spec(self) -> dict[str, Any]:
        """This evaluator as `{"type": "context_relevance", "params": {...}}`."""
        return dataclass_spec("context_relevance", self)


@dataclass(frozen=True, slots=True)
class TaskCompletion:
    """Share of rows whose answer completes the task, judged by a rule or a reference.

    With `rule`, a row scores 1 when the answer satisfies every key of it:

    - `{"contains": [...]}`: every str occurs in the answer (case-insensitive);
    - `{"contains_any": [...]}`: at least one does;
    - `{"not_contains": [...]}`: none does;
    - `{"regex": "..."}`: the pattern matches somewhere (`re.search`; add `(?i)` to
      ignore case);
    - `{"equals": "..."}`: the answer equals it after normalization (lowercase,
      punctuation dropped, whitespace collapsed).

    Without a rule, the answer is compared with the row's `reference` text
    (or each of a list of acceptable ones), both normalized as above, and
    `match` says what completes the task:

    - `"exact"`: the answer equals a reference;
    - `"contains"`: the answer contains a reference as a whole-word phrase
      (reference "30 days" in "Refunds are possible within 30 days.");
    - `"similarity"` (default): "contains", or the answer's similarity to a
      reference reaches `threshold`.

    `details["method"]` is "rule", "exact-match", "contains" or the
    similarity method.

    Args:
        answer: the column with the response text.
        reference: the column with the expected answer (str or list of strs).
        rule: a JSON-able rule (see above); when given, `reference` is not read.
        match: "similarity", "contains" or "exact".
        threshold: similarity that counts as a match; None for the method's
            calibrated default (`DEFAULT_THRESHOLDS`).
        name: the metric name in the scores.
    """

    answer: str = "answer"
    reference: str = "reference"
    rule: dict[str, Any] | None = None
    match: str = "similarity"
    threshold: float | None = None
    name: str = "task_completion"

    def __post_init__(self) -> None:
        check_name(self.name, "TaskCompletion")
        _check_columns(self.name, answer=self.answer, reference=self.reference)
        _check_threshold(self.name, self.threshold)
        if self.match not in MATCHES:
            raise EvaluationError(
                f"{self.name}: match={self.match!r} is not supported; use one of "
                f"{', '.join(MATCHES)}"
            )
        if self.rule is not None:
            _check_rule(self.name, self.rule)

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows`; see the class docstring."""
        require_rows(self.name, rows)
        answers = _answers(self.name, rows, self.answer)
        if self.rule is not None:
            rule = self.rule
            passed = [_satisfies(answer, rule) for answer in answers]
            return self._score(answers, passed, {"method": "rule", "rule": rule})
        references = _texts(
            self.name,
            column(self.name, rows, self.reference, "reference"),
            self.reference,
            many=True,
        )
        pairs = list(zip(answers, references, strict=True))
        if self.match == "exact":
            exact = [normalize(a) in {normalize(r) for r in refs} for a, refs in pairs]
            return self._score(answers, exact, {"method": "exact-match"})
        contained = [any(_contains(a, r) for r in refs) for a, refs in pairs]
        if self.match == "contains":
            return self._score(answers, contained, {"method": "contains"})
        sim = backend()
        threshold = _threshold("task_completion", self.threshold, sim)
        best = sim.best([[a] for a in answers], references)
        passed = [
            c or (bool(b) and b[0] >= threshold) for c, b in zip(contained, best, strict=True)
        ]
        return self._score(answers, passed, {"method": sim.method, "threshold": threshold})

    def _score(self, answers: list[str], passed: list[bool], details: dict[str, Any]) -> Score:
        per_row = [
            {"row": i, "value": float(ok), "answer": _cut(a)}
            for i, (a, ok) in enumerate(zip(answers, passed, strict=True))
            if not ok
        ]
        details["failed"] = len(per_row)
        details["rows"] = worst_rows(per_row)
        return Score(sum(passed) / len(passed), len(passed), details)

    def spec(self) -> dict[str, Any]:
        """This evaluator as `{"type": "task_completion", "params": {...}}`."""
        return dataclass_spec("task_completion", self)


def _check_rule(name: str, rule: object) -> None:
    if not isinstance(rule, Mapping) or not rule:
        raise EvaluationError(
            f"{name}: rule={rule!r} must be a non-empty dict such as "
            '{"contains": ["refund"]} or {"regex": "\\\\d+ days"}'
        )
    for key, value in rule.items():
        if key not in RULE_KEYS:
            raise EvaluationError(
                f"{name}: unknown rule {key!r}; rules are {', '.join(RULE_KEYS)} "
                '(e.g. {"contains": ["refund", "30 days"]})'
            )
        if key in ("contains", "contains_any", "not_contains"):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise EvaluationError(
                    f"{name}: rule {key!r} needs a list of non-empty strs, got {value!r}"
                )
        elif not isinstance(value, str):
            raise EvaluationError(f"{name}: rule {key!r} needs a str, got {value!r}")
        elif key == "regex":
            try:
                re.compile(value)
            except re.error as exc:
                raise EvaluationError(
                    f"{name}: rule 'regex' {value!r} is not a valid regular expression: {exc}"
                ) from None


def _satisfies(answer: str, rule: Mapping[str, Any]) -> bool:
    lowered = answer.lower()
    checks = {
        "contains": lambda v: all(s.lower() in lowered for s in v),
        "contains_any": lambda v: any(s.lower() in lowered for s in v),
        "not_contains": lambda v: not any(s.lower() in lowered for s in v),
        "regex": lambda v: re.search(v, answer) is not None,
        "equals": lambda v: normalize(answer) == normalize(v),
    }
    return all(checks[key](value) for key, value in rule.items())


def _contains(answer: str, reference: str) -> bool:
    """True when normalized `reference` occurs in normalized `answer` as whole words."""
    needle = normalize(reference)
    return bool(needle) and f" {needle} " in f" {normalize(answer)} "
