"""Plain-text helpers for the LLM evaluators: sentences, tokens, the lexical similarity.

Pure Python and deterministic, so the lexical-overlap fallback works on a base
install. The lexical similarity is the cosine between bag-of-words count
vectors of lowercased word tokens with common English stop words removed:
1.0 for the same content words in the same proportions, 0.0 for no shared
content word. It measures word overlap, not meaning; paraphrases score low.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"[a-z0-9]+")
_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")

_STOP_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def sentences(text: str) -> list[str]:
    """Split `text` into sentences at `.`, `!` or `?` followed by space, and at newlines.

    Pieces without a letter or digit (stray punctuation, list bullets) are dropped.
    """
    pieces = (piece.strip() for piece in _SENTENCE_END.split(text))
    return [piece for piece in pieces if any(ch.isalnum() for ch in piece)]


def tokens(text: str) -> list[str]:
    """Lowercased word tokens of `text`, stop words removed."""
    return [token for token in _TOKEN.findall(text.lower()) if token not in STOP_WORDS]


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and collapse whitespace: for exact-match comparisons."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def lexical_matrix(left: Sequence[str], right: Sequence[str]) -> list[list[float]]:
    """Cosine similarity of token counts between every text in `left` and every one in `right`."""
    right_counts = [Counter(tokens(text)) for text in right]
    right_norms = [_norm(counts) for counts in right_counts]
    matrix = []
    for text in left:
        counts = Counter(tokens(text))
        norm = _norm(counts)
        row = []
        for other, other_norm in zip(right_counts, right_norms, strict=True):
            if not norm or not other_norm:
                row.append(0.0)
                continue
            dot = sum(count * other[token] for token, count in counts.items())
            row.append(dot / (norm * other_norm))
        matrix.append(row)
    return matrix


def _norm(counts: Counter[str]) -> float:
    return math.sqrt(sum(c * c for c in counts.values()))
