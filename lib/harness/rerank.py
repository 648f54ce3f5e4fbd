"""Re-ranking a system's top rows after its SQL ran, timed as part of each query.

No cross-encoder's weights can be had on this machine (no package ships one, and nothing
downloads at run time). What can run offline, and is honest about what it is, is
late interaction in the manner of ColBERT (Khattab and Zaharia, SIGIR 2020) over the
embedding model's own token vectors: the query and each candidate passage are run through
all-MiniLM-L6-v2 without pooling, and a passage's score is MaxSim, Σ over the query's tokens
of the largest cosine between that token and any of the passage's tokens. MiniLM was
trained for pooled sentence vectors, not for this, so whether it helps is a measurement, not
a promise. The candidates' token vectors are computed per query (storing them for every row
would take gigabytes), so their cost is in the latency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lib.dataset.passages import Dataset
from lib.harness.recall import HarnessError


class TokenModel(Protocol):
    def token_vectors(self, texts: Sequence[str]) -> list[np.ndarray]: ...


def maxsim(query: np.ndarray, passage: np.ndarray) -> float:
    """Σ over the query's token vectors of the best cosine with a passage token vector."""
    return float((query @ passage.T).max(axis=1).sum())


@dataclass(frozen=True)
class MaxSim:
    """Re-rank the first `top` rows by MaxSim; the rows past them keep their order."""

    model: TokenModel
    texts: Callable[[Sequence[Any]], list[str]]  # row keys -> their passages
    top: int = 20

    @property
    def label(self) -> str:
        return f"MaxSim re-rank of the top {self.top} (MiniLM token vectors)"

    def __call__(
        self, query: str, keys: Sequence[Any], values: Sequence[float]
    ) -> tuple[list[Any], list[float]]:
        return _reranked(self.top, keys, values, lambda head: self._scored(query, head))

    def _scored(self, query: str, head: list) -> list[tuple[int, float]]:
        q, *passages = self.model.token_vectors([query, *self.texts(head)])
        scores = [maxsim(q, p) for p in passages]
        return sorted(enumerate(scores), key=lambda x: (-x[1], x[0]))


def _reranked(
    top: int,
    keys: Sequence[Any],
    values: Sequence[float],
    order: Callable[[list], list[tuple[int, float]]],
) -> tuple[list[Any], list[float]]:
    """The first `top` keys in `order(head)`'s order (index into the head, new score), the
    rest as they were."""
    head = list(keys[:top])
    if not head:
        return list(keys), list(values)
    ranked = order(head)
    return (
        [head[i] for i, _ in ranked] + list(keys[top:]),
        [s for _, s in ranked] + list(values[top:]),
    )


def lab_texts(ds: Dataset) -> Callable[[Sequence[Any]], list[str]]:
    """Row keys of a lab size -> their passages ("" for a generated row)."""

    def texts(keys: Sequence[Any]) -> list[str]:
        return [ds.passage_of(int(k)).text if int(k) <= ds.n_real else "" for k in keys]

    return texts


def lab_maxsim(ds: Dataset) -> Callable[[int], MaxSim]:
    """n -> a MaxSim re-ranker of the top n rows of a lab size, over the passages' text,
    with the size's model loaded when first asked."""
    texts = lab_texts(ds)

    def make(n: int) -> MaxSim:
        from lib.core.embeddings.registry import load_model

        model = load_model(ds.model_name)
        if not hasattr(model, "token_vectors"):
            raise HarnessError(f"{ds.model_name} gives no token vectors to re-rank with")
        return MaxSim(model, texts, n)

    return make


class Reranker(Protocol):
    model: str

    def rerank(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> list[tuple[int, float]]: ...


@dataclass(frozen=True)
class ApiRerank:
    """Re-rank the first `top` rows with a hosted cross-encoder (Voyage's rerank endpoint,
    lib/core/embeddings/voyage.py's VoyageReranker); the rows past them keep their order."""

    client: Reranker
    texts: Callable[[Sequence[Any]], list[str]]  # row keys -> their passages
    top: int = 20

    @property
    def label(self) -> str:
        return f"Voyage {self.client.model} re-rank of the top {self.top}"

    def __call__(
        self, query: str, keys: Sequence[Any], values: Sequence[float]
    ) -> tuple[list[Any], list[float]]:
        return _reranked(
            self.top, keys, values, lambda head: self.client.rerank(query, self.texts(head))
        )


def lab_voyage(ds: Dataset, client: Reranker | None = None) -> Callable[[int], ApiRerank]:
    """n -> a Voyage re-ranker of the top n rows of a lab size (VOYAGE_API_KEY's)."""
    if client is None:
        from lib.core.embeddings.voyage import VoyageReranker

        client = VoyageReranker()
    texts = lab_texts(ds)
    return lambda n: ApiRerank(client, texts, n)
