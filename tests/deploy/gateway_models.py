"""Models the gateway tests register and serve (importable, so their pickles load).

`publish(workspace, which)` runs a real pipeline that returns `lg.Model(...)`,
so each model version is registered the way users register theirs.
"""

from __future__ import annotations

from typing import Any

import lockgate as lg

#: What a mirror target answers; no response a client gets may contain it.
SENTINEL = "MIRROR-SENTINEL-never-returned"


class Labeler:
    """Answers every input with its label (an sklearn-like `predict`)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, inputs: Any) -> list[str]:
        rows = inputs if isinstance(inputs, list) else [inputs]
        return [self.label for _ in rows]


class Picky:
    """Refuses inputs that are not a list of numbers, as sklearn would."""

    def predict(self, inputs: Any) -> float:
        if not isinstance(inputs, list) or not all(isinstance(v, int | float) for v in inputs):
            raise ValueError("expected a list of numbers")
        return float(sum(inputs))


def _cannot_load() -> Any:
    raise RuntimeError("this model's pickle needs a library the gateway lacks")


class Unloadable:
    """Pickles fine; unpickling it raises (a model built with a missing dependency)."""

    def predict(self, inputs: Any) -> str:
        return "never"

    def __reduce__(self) -> Any:
        return (_cannot_load, ())


def double(inputs: Any) -> Any:
    """A plain callable model."""
    return [2 * v for v in inputs]


def answer(prompt: str, inputs: Any, *, context: Any = None, **_: Any) -> str:
    """A deterministic stand-in for an LLM: quotes the context it was given."""
    return f"{prompt.format(**inputs)} {context or ''}".strip()


def _sklearn() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


VALUES: dict[str, tuple[str, Any]] = {
    "current": ("support-bot", lambda: Labeler("current")),
    "candidate": ("support-bot", lambda: Labeler("candidate")),
    "sentinel": ("support-bot", lambda: Labeler(SENTINEL)),
    "unloadable": ("support-bot", lambda: Unloadable()),
    "picky": ("picky", lambda: Picky()),
    "double": ("doubler", lambda: double),
    "sklearn": ("clf", _sklearn),
    "prompt": ("answerer", lambda: "Answer about {topic}:"),
}


@lg.task
def build(which: str) -> lg.Model:
    name, make = VALUES[which]
    return lg.Model(name, make())


@lg.pipeline
def publish_model(which: str = "current"):
    return build(which)


def publish(workspace: Any, which: str) -> int:
    """Register `which` as the next version of its model; return the version number."""
    result = lg.run(publish_model, params={"which": which}, workspace=workspace, executor="inline")
    assert result.ok, result.record.error
    name = VALUES[which][0]
    found = workspace.metadata.resolve_version("model", name, None)
    assert found is not None
    return int(found.version)
