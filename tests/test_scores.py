"""The evals' metrics (lib/harness/scores.py) against trec_eval itself (pytrec_eval), on runs
made from the real labels; the bootstrap interval and the randomisation test."""

from __future__ import annotations

import random

import numpy as np
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.harness import labels as L
from lib.harness import scores as S

# lab metric -> (trec_eval measure asked for, key it answers with, run cut to the top k)
TREC = {
    "ndcg@10": ("ndcg_cut.10", "ndcg_cut_10", None),
    "recall@10": ("recall.10", "recall_10", None),
    "recall@100": ("recall.100", "recall_100", None),
    "mrr@10": ("recip_rank", "recip_rank", 10),
}


@pytest.fixture(scope="module")
def labels() -> L.Labels:
    return L.read()


@pytest.fixture(scope="module")
def pool(labels) -> list[str]:
    """Chunk ids to rank besides the judged ones: 3,000 of the corpus, fixed."""
    ids = L.table_order_ids()
    return random.Random(7).sample(ids, 3_000)


def noisy_run(labels: L.Labels, pool: list[str], seed: int = 1) -> dict[str, list[str]]:
    """Each query's judged docs, some dropped, shuffled among 20 unjudged ones, then 100 more
    unjudged ones."""
    rng = random.Random(seed)
    run = {}
    for q in labels.queries:
        head = [d for d in labels.qrels[q.id] if rng.random() < 0.7] + rng.sample(pool, 20)
        rng.shuffle(head)
        run[q.id] = list(dict.fromkeys(head + rng.sample(pool, 100)))
    return run


def overlap_scores(labels: L.Labels, pool: list[str]) -> dict[str, dict[str, float]]:
    """A simple deterministic ranking with many ties: shared content words between the query
    and each passage of (its judged docs + 400 of the pool)."""
    pool = pool[:400]
    corpus = L.read_chunks()
    text = dict(zip(corpus.ids(), (corpus.text(i) for i in range(len(corpus))), strict=True))
    words = {d: L.content_words(text[d]) for d in pool}
    out = {}
    for q in labels.queries:
        qw = L.content_words(q.text)
        docs = list(dict.fromkeys([*labels.qrels[q.id], *pool]))
        for d in labels.qrels[q.id]:
            words.setdefault(d, L.content_words(text[d]))
        out[q.id] = {d: float(len(qw & words[d])) for d in docs}
    return out


def trec(run_scores: dict[str, dict[str, float]], qrels, metric: str) -> dict[str, float]:
    """pytrec_eval's per-query values of `metric` for a run given as scores."""
    asked, key, cut = TREC[metric]
    if cut is not None:
        run_scores = {
            q: {d: run_scores[q][d] for d in S.ranked(docs)[:cut]} for q, docs in run_scores.items()
        }
    result = pytrec_eval.RelevanceEvaluator(qrels, {asked}).evaluate(run_scores)
    return {q: v[key] for q, v in result.items()}


def as_scores(run: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """The run as trec_eval reads it from write_run's file: score = -rank."""
    return {q: {d: -float(r) for r, d in enumerate(docs, 1)} for q, docs in run.items()}


def assert_same(lab: S.Scores, run_scores, qrels) -> None:
    for metric in S.METRICS:
        ref = trec(run_scores, qrels, metric)
        assert set(ref) == set(lab.query_ids)
        ours = lab.values[metric]
        theirs = np.array([ref[q] for q in lab.query_ids])
        assert np.allclose(ours, theirs, rtol=0, atol=1e-9), metric
        assert np.array_equal(np.round(ours, 4), np.round(theirs, 4)), metric
        mean = pytrec_eval.compute_aggregated_measure(TREC[metric][1], list(ref.values()))
        assert round(lab.mean(metric), 4) == round(mean, 4), metric
        assert abs(lab.mean(metric) - mean) < 1e-9, metric


def test_a_shuffled_noisy_run_scores_as_trec_eval_scores_it(labels, pool):
    run = noisy_run(labels, pool)
    lab = S.score(run, labels.qrels)
    assert lab.query_ids == tuple(sorted(run))
    assert 0.1 < lab.mean("ndcg@10") < 0.9 and 0.1 < lab.mean("mrr@10") < 0.9
    assert_same(lab, as_scores(run), labels.qrels)


def test_a_ranking_with_tied_scores_is_ordered_as_trec_eval_orders_it(labels, pool):
    scored = overlap_scores(labels, pool)
    run = {q: S.ranked(docs) for q, docs in scored.items()}
    lab = S.score(run, labels.qrels)
    ties = sum(len(set(v.values())) < len(v) for v in scored.values())
    assert ties == len(scored)  # every query has ties for the order to matter
    assert lab.mean("recall@100") > 0
    assert_same(lab, scored, labels.qrels)


def test_scores_on_a_table_cut_of_the_qrels_match_trec_eval(labels, pool):
    table = L.table_doc_ids(100_000, L.table_order_ids())
    kept = labels.select(ids=set(L.evaluable(labels, table)))
    qrels = L.restricted(kept.qrels, table)
    run = {q: [d for d in docs if d in table] for q, docs in noisy_run(kept, pool, 3).items()}
    run = {q: docs for q, docs in run.items() if docs}
    lab = S.score(run, {q: qrels[q] for q in run})
    assert_same(lab, as_scores(run), {q: qrels[q] for q in run})


def test_written_run_files_read_back_the_same_order(labels, pool, tmp_path):
    run = noisy_run(labels, pool)
    path = tmp_path / "run.txt"
    S.write_run(run, path, tag="noisy")
    assert S.read_run(path) == run
    first = path.read_text().splitlines()[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "noisy"


def test_a_missing_query_scores_zero_and_duplicates_count_once():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 2}, "q3": {"d": 0}}
    lab = S.score({"q1": ["x", "a", "a", "b"]}, qrels)
    assert lab.query_ids == ("q1", "q2")  # q3 has nothing relevant
    per = lab.per_query()
    assert per["q2"] == {m: 0.0 for m in S.METRICS}
    assert per["q1"]["mrr@10"] == 0.5
    assert per["q1"]["recall@10"] == 1.0
    ideal = 2 + 1 / np.log2(3)
    assert per["q1"]["ndcg@10"] == pytest.approx((2 / np.log2(3) + 1 / np.log2(4)) / ideal)


def test_ranked_breaks_ties_by_doc_id_descending():
    assert S.ranked({"a": 1.0, "c": 1.0, "b": 2.0, "d": 0.5}) == ["b", "c", "a", "d"]


def test_scores_split_by_kind(labels, pool):
    lab = S.score(noisy_run(labels, pool), labels.qrels)
    kinds = {q.id: q.kind for q in labels.queries}
    parts = S.by_kind(lab, kinds)
    assert list(parts) == sorted(L.KINDS)
    assert sum(len(p.query_ids) for p in parts.values()) == len(lab.query_ids)
    for kind, part in parts.items():
        assert {kinds[q] for q in part.query_ids} == {kind}


# ---- intervals and the paired test -------------------------------------------------------

values = st.lists(
    st.floats(min_value=0, max_value=1, allow_nan=False), min_size=5, max_size=60
).filter(lambda v: max(v) - min(v) > 0.05)


@settings(max_examples=30, deadline=None)
@given(values, st.integers(0, 2**16))
def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_queries(v, seed):
    small = S.bootstrap_interval(v, seed=seed, resamples=2_000)
    assert small.low <= small.mean <= small.high
    assert small.mean == pytest.approx(float(np.mean(v)))
    large = S.bootstrap_interval(np.tile(v, 9), seed=seed, resamples=2_000)
    assert large.low <= large.mean <= large.high
    assert large.high - large.low < small.high - small.low


def test_the_bootstrap_interval_is_seeded():
    v = np.random.default_rng(0).random(100)
    assert S.bootstrap_interval(v, seed=3) == S.bootstrap_interval(v, seed=3)
    assert S.bootstrap_interval(v, seed=3) != S.bootstrap_interval(v, seed=4)


def test_the_randomisation_test_finds_a_real_difference(labels, pool):
    a = S.score(noisy_run(labels, pool, seed=1), labels.qrels)
    better = {q: [*labels.answers(q), *docs] for q, docs in noisy_run(labels, pool, seed=2).items()}
    b = S.score(better, labels.qrels)
    c = S.compare(a, b, "ndcg@10")
    assert c.difference > 0 and c.interval.low > 0
    assert c.p_value < 0.05
    assert c.queries == len(labels.queries)
    assert S.compare(a, b, "ndcg@10") == c  # seeded


def test_two_identical_systems_in_another_order_do_not_differ(labels, pool):
    run = noisy_run(labels, pool)
    reordered = dict(reversed(list(run.items())))
    a, b = S.score(run, labels.qrels), S.score(reordered, labels.qrels)
    c = S.compare(a, b, "ndcg@10")
    assert c.difference == 0 and c.p_value > 0.05


def test_the_randomisation_test_is_two_sided_and_symmetric():
    rng = np.random.default_rng(5)
    a = rng.random(80)
    b = a + 0.05 + rng.normal(0, 0.1, 80)
    p_ab = S.randomisation_test(a, b, seed=1)
    assert p_ab == S.randomisation_test(b, a, seed=1)
    assert p_ab < 0.05
    assert S.randomisation_test(a, a + rng.normal(0, 0.1, 80) * 0, seed=1) == 1.0
