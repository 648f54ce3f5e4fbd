"""Retrieval metrics over labelled queries, in numpy: nDCG@10, recall@10, recall@100, MRR@10,
per query, per kind and as means with a bootstrap interval, and a paired randomisation test.

Definitions follow trec_eval (tests/test_scores.py checks them against pytrec_eval):

- nDCG@10 (trec_eval ``ndcg_cut_10``): gain = relevance, discount log2(rank + 1), divided by
  the DCG of the ideal ranking of every judged document of the query (cut at 10).
- recall@k (``recall_k``): relevant retrieved in the top k / all relevant (relevance >= 1).
- MRR@10 (``recip_rank`` on the run cut to its top 10): 1 / rank of the first relevant
  document within the top 10, else 0.

A run is {query id: [doc id, …]} in rank order (best first). trec_eval itself orders a
run by score and breaks ties by doc id, descending; `ranked` turns scores into that order,
and `write_run` writes scores that keep the given order, so a run means the same here and
there. A query of the qrels that the run lacks scores 0; a query without a relevant
document is left out (as trec_eval does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
Run = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


# ---- per query ----------------------------------------------------------------------------


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k of one ranking (gain = relevance; the ideal from every judged document)."""
    ideal = np.sort(np.array([r for r in judged.values() if r > 0], dtype=float))[::-1][:k]
    if not ideal.size:
        return 0.0
    gains = np.array([max(judged.get(d, 0), 0) for d in ranking[:k]], dtype=float)
    dcg = float(gains @ _discounts(k)[: gains.size])
    return dcg / float(ideal @ _discounts(k)[: ideal.size])


def recall(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents (relevance >= 1) in the top k."""
    relevant = {d for d, r in judged.items() if r >= 1}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def reciprocal_rank(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document in the top k, else 0."""
    for rank, d in enumerate(ranking[:k], 1):
        if judged.get(d, 0) >= 1:
            return 1.0 / rank
    return 0.0


def query_scores(ranking: Sequence[str], judged: Mapping[str, int]) -> dict[str, float]:
    """Every metric of METRICS for one query."""
    ranking = _unique(ranking)
    return {
        "ndcg@10": ndcg(ranking, judged, 10),
        "recall@10": recall(ranking, judged, 10),
        "recall@100": recall(ranking, judged, 100),
        "mrr@10": reciprocal_rank(ranking, judged, 10),
    }


def _unique(ranking: Sequence[str]) -> list[str]:
    """The ranking with repeats of a document removed (trec_eval counts a document once)."""
    return list(dict.fromkeys(ranking))


@dataclass(frozen=True)
class Scores:
    """Per-query values of each metric, queries in `query_ids` order."""

    query_ids: tuple[str, ...]
    values: Mapping[str, np.ndarray]  # metric -> (n_queries,) float64

    def mean(self, metric: str) -> float:
        v = self.values[metric]
        return float(v.mean()) if v.size else float("nan")

    def means(self) -> dict[str, float]:
        return {m: self.mean(m) for m in self.values}

    def of(self, query_ids: Iterable[str]) -> Scores:
        """The scores of these queries only (in the order given)."""
        pos = {q: i for i, q in enumerate(self.query_ids)}
        idx = np.array([pos[q] for q in query_ids], dtype=np.int64)
        values = {m: v[idx] for m, v in self.values.items()}
        return Scores(tuple(self.query_ids[i] for i in idx), values)

    def per_query(self) -> dict[str, dict[str, float]]:
        """{query id: {metric: value}}."""
        return {
            q: {m: float(v[i]) for m, v in self.values.items()}
            for i, q in enumerate(self.query_ids)
        }


def score(run: Run, qrels: Qrels) -> Scores:
    """Every metric for each query of `qrels` that has a relevant document (sorted by id); a
    query the run lacks scores 0."""
    ids = tuple(sorted(q for q, j in qrels.items() if any(r >= 1 for r in j.values())))
    per = [query_scores(run.get(q, ()), qrels[q]) for q in ids]
    return Scores(ids, {m: np.array([p[m] for p in per], dtype=np.float64) for m in METRICS})


def by_kind(scores: Scores, kinds: Mapping[str, str]) -> dict[str, Scores]:
    """The scores split by kind of query (`kinds`: query id -> kind), kinds sorted."""
    groups: dict[str, list[str]] = {}
    for q in scores.query_ids:
        groups.setdefault(kinds[q], []).append(q)
    return {k: scores.of(groups[k]) for k in sorted(groups)}


# ---- intervals and tests ------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    confidence: float


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """The mean with a percentile bootstrap interval (queries resampled with replacement;
    seeded, so the same values give the same interval)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to resample")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):
        stop = min(resamples, start + 1000)
        means[start:stop] = v[rng.integers(0, v.size, size=(stop - start, v.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(v.mean()), float(low), float(high), confidence)


@dataclass(frozen=True)
class Comparison:
    """System B against system A on the same queries."""

    difference: float  # mean(B) - mean(A)
    interval: Interval  # bootstrap interval of the per-query differences
    p_value: float  # two-sided, paired randomisation (sign-flip) test
    queries: int


def randomisation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    permutations: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided p-value of a paired randomisation test of mean(b) - mean(a): each query's
    difference has its sign flipped at random (the two systems swapped on it); the p-value is
    the share of flips whose |mean| reaches the observed one, counting the observed itself."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("need two equally long, non-empty sequences of per-query values")
    observed = abs(d.mean())
    if np.all(d == 0):
        return 1.0
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 1000):
        n = min(permutations, start + 1000) - start
        signs = rng.integers(0, 2, size=(n, d.size), dtype=np.int8) * 2 - 1
        flipped = np.abs((signs * d).mean(axis=1))
        hits += int(np.count_nonzero(flipped >= observed - 1e-12))
    return (hits + 1) / (permutations + 1)


def compare(
    a: Scores, b: Scores, metric: str = "ndcg@10", *, seed: int = 0, resamples: int = 10_000
) -> Comparison:
    """B against A on the queries both were scored on: the difference of means, its bootstrap
    interval and the randomisation test's p-value."""
    common = [q for q in a.query_ids if q in set(b.query_ids)]
    va, vb = a.of(common).values[metric], b.of(common).values[metric]
    diff = vb - va
    return Comparison(
        difference=float(diff.mean()),
        interval=bootstrap_interval(diff, seed=seed, resamples=resamples),
        p_value=randomisation_test(va, vb, permutations=resamples, seed=seed),
        queries=len(common),
    )


# ---- runs ---------------------------------------------------------------------------------


def ranked(scored: Mapping[str, float]) -> list[str]:
    """Doc ids by score, highest first, ties by doc id descending (trec_eval's order)."""
    return [d for d, _ in sorted(scored.items(), key=lambda ds: (ds[1], ds[0]), reverse=True)]


def write_run(run: Run, path: Path, tag: str = "lab") -> None:
    """A TREC run file, `query_id Q0 doc_id rank score tag`; the score falls with the rank
    (score = -rank), so trec_eval reads the same order."""
    with path.open("w", encoding="utf-8") as f:
        for q in sorted(run):
            for rank, d in enumerate(_unique(run[q]), 1):
                f.write(f"{q} Q0 {d} {rank} {-rank} {tag}\n")


def read_run(path: Path) -> dict[str, list[str]]:
    """A TREC run file as {query id: [doc id, …]}, each query's docs in trec_eval's order
    (by score, highest first; ties by doc id descending)."""
    scored: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{n}: expected `query_id Q0 doc_id rank score tag`")
            q, _, d, _, s, _ = parts
            docs = scored.setdefault(q, {})
            docs[d] = max(docs.get(d, float("-inf")), float(s))
    return {q: ranked(docs) for q, docs in scored.items()}
