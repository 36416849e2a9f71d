"""Evaluators: score model and LLM outputs; `evaluate` runs them per cohort as a node.

    from lockgate import evals

    scores = evals.evaluate(
        rows,                                   # list of dicts or a DataFrame
        [evals.Accuracy(), evals.Groundedness(), "task_completion"],
        by="cohort",
    )
    scores["metrics"]["groundedness"]           # 0.87
    scores["cohorts"]["billing"]["metrics"]

Public surface: `Score`, the `Evaluator` protocol, the built-in evaluators,
`evaluate`, `from_spec` and `EvaluationError`. This package may import only
`lockgate.model`, `lockgate.errors` and third-party libraries, and imports
numpy, torch and sentence-transformers only inside functions, so importing
it stays fast and works on a base install.
"""

from __future__ import annotations

from lockgate.errors import EvaluationError
from lockgate.evals.base import Evaluator, Score, from_spec
from lockgate.evals.llm import ContextRelevance, Groundedness, TaskCompletion
from lockgate.evals.metrics import F1, Accuracy, Rmse, RocAuc
from lockgate.evals.runner import evaluate

__all__ = [
    "F1",
    "Accuracy",
    "ContextRelevance",
    "EvaluationError",
    "Evaluator",
    "Groundedness",
    "Rmse",
    "RocAuc",
    "Score",
    "TaskCompletion",
    "evaluate",
    "from_spec",
]
