"""The evals' labelled queries (lib/harness/labels.py): built deterministically from the corpus,
stored as documented, and matched to the recall tables' rows."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lib.core import chunks
from lib.dataset.passages import N_QUERIES, Dataset, table_order
from lib.harness import labels as L

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR / "scripts"))
import extract_chunks as ec  # noqa: E402
import extract_glossaries as eg  # noqa: E402

FILES = (L.QUERIES_FILE, L.QRELS_FILE, L.README_FILE)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labels")
    L.build_files(out)
    return out


@pytest.fixture(scope="module")
def committed() -> L.Labels:
    return L.read(L.LABELS_DIR)


@pytest.fixture(scope="module")
def order_ids() -> list[str]:
    return L.table_order_ids()


def test_a_rebuild_gives_byte_identical_files(built, tmp_path):
    L.build_files(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (built / name).read_bytes(), name


def test_the_committed_labels_are_what_the_builder_makes_now(built):
    for name in FILES:
        assert (L.LABELS_DIR / name).read_bytes() == (built / name).read_bytes(), (
            f"data/labels/{name} is stale: run `make labels`"
        )


def test_the_files_read_back_as_built(built, committed):
    assert L.build() == committed
    assert L.read(built) == committed


def test_every_query_has_an_answer_a_known_kind_and_split(committed):
    assert len(committed.queries) >= 500
    ids = [q.id for q in committed.queries]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert set(committed.qrels) == set(ids)
    for q in committed.queries:
        assert q.kind in L.KINDS and q.split in L.SPLITS
        assert q.source in chunks.TITLES
        assert q.text and len(q.text) <= L.MAX_QUERY_CHARS and "\t" not in q.text
        assert q.id.startswith(q.kind.removesuffix("_nooverlap") + "-" + q.source + "-")
        judged = committed.qrels[q.id]
        assert set(judged.values()) <= {1, 2}
        assert committed.answers(q.id), q
    assert {q.kind for q in committed.queries} == set(L.KINDS)


def test_no_query_is_in_both_splits_and_the_split_is_the_hash_of_the_id(committed):
    rows = (L.LABELS_DIR / L.QUERIES_FILE).read_text(encoding="utf-8").splitlines()[1:]
    splits: dict[str, set[str]] = {}
    for row in rows:
        qid, _, split, _, _ = row.split("\t")
        splits.setdefault(qid, set()).add(split)
    assert all(len(s) == 1 for s in splits.values())
    assert all(L.split_of(q.id) == q.split for q in committed.queries)
    dev = sum(q.split == "dev" for q in committed.queries) / len(committed.queries)
    assert abs(dev - L.DEV_SHARE) < 0.05


def test_no_two_queries_read_alike(committed):
    texts = [L.normalized(q.text) for q in committed.queries]
    assert len(texts) == len(set(texts))


def test_every_judged_doc_is_a_passage_of_the_corpus(committed, order_ids):
    known = set(order_ids)
    judged = {d for j in committed.qrels.values() for d in j}
    assert judged <= known


def test_the_nooverlap_kinds_share_no_content_word_with_their_answer(committed):
    corpus = chunks.load_chunks()
    text = dict(zip(corpus.ids(), (corpus.text(i) for i in range(len(corpus))), strict=True))
    overlapping = {"faq": 0, "glossary": 0}
    for q in committed.queries:
        if q.kind == "heading":
            continue
        answer = set().union(*(L.content_words(text[d]) for d in committed.answers(q.id)))
        shared = L.content_words(q.text) & answer
        if q.kind.endswith("_nooverlap"):
            assert not shared, (q, shared)
        else:
            assert shared, q
            overlapping[q.kind] += 1
    assert all(n > 0 for n in overlapping.values())


def test_headings_and_questions_lose_their_numbering():
    assert L.clean_heading("13.3.1. Table-Level Locks") == "Table-Level Locks"
    assert L.clean_heading("2.10. How do I divide my work into patches?") == (
        "How do I divide my work into patches?"
    )
    assert L.clean_heading("1.6 How do I use cgroups ?") == "How do I use cgroups?"
    assert L.clean_heading("II. How does it work?") == "How does it work?"
    assert L.clean_heading("Q: Directly calling kernel function is an ABI?") == (
        "Directly calling kernel function is an ABI?"
    )
    assert L.clean_heading("2to3 — Automated translation") == "2to3 — Automated translation"
    assert L.clean_heading("A Note on Types") == "A Note on Types"
    assert L.clean_title("abc — Abstract Base Classes — Python 3.11.2 documentation") == (
        "abc — Abstract Base Classes"
    )


def test_content_words_drop_stop_words_and_fold_plurals():
    assert L.content_words("What are the indexes of a table?") == {"index", "table"}
    assert L.content_words("Indexed tables") == L.content_words("index table")


def test_the_split_is_stable_and_roughly_the_dev_share():
    ids = [f"faq-python-{i:08x}" for i in range(4000)]
    assert [L.split_of(q) for q in ids] == [L.split_of(q) for q in ids]
    assert abs(sum(L.split_of(q) == "dev" for q in ids) / len(ids) - L.DEV_SHARE) < 0.03


# ---- tables -------------------------------------------------------------------------------


def small_labels() -> L.Labels:
    queries = (
        L.Query("q1", "faq", "test", "python", "one"),
        L.Query("q2", "heading", "dev", "git", "two"),
    )
    qrels = {"q1": {"a": 2, "b": 1, "c": 1}, "q2": {"d": 2, "e": 2, "a": 1}}
    return L.Labels(queries, qrels)


def test_a_query_is_evaluable_only_where_every_answer_passage_is():
    labels = small_labels()
    assert L.evaluable(labels, {"a"}) == ["q1"]
    assert L.evaluable(labels, {"a", "d"}) == ["q1"]
    assert L.evaluable(labels, {"a", "d", "e"}) == ["q1", "q2"]
    assert L.evaluable(labels, {"b", "c", "d"}) == []
    assert L.restricted(labels.qrels, {"a", "d"}) == {"q1": {"a": 2}, "q2": {"d": 2, "a": 1}}


def test_labels_select_by_kind_split_and_ids():
    labels = small_labels()
    assert [q.id for q in labels.select(kinds={"faq"}).queries] == ["q1"]
    assert [q.id for q in labels.select(split="dev").queries] == ["q2"]
    assert labels.select(ids={"q2"}).qrels == {"q2": labels.qrels["q2"]}


def test_table_doc_ids_are_the_rows_lib_dataset_loads(order_ids, tmp_path):
    digest, order, hashes = table_order()
    ds = Dataset(
        model_name="none",
        dimension=384,
        corpus_digest=digest,
        order=order,
        hashes=hashes,
        queries=np.zeros((N_QUERIES, 384), np.float32),
        seed=0,
        cache_path=tmp_path / "cache.sqlite",
    )
    assert order_ids == [h[:16] for h in hashes]
    for n in (1, 500, 20_000):
        rows = L.table_doc_ids(n, order_ids)
        assert len(rows) == n
        assert {ds.passage_of(r).id for r in (1, n // 2 + 1, n)} <= rows
        assert ds.passage_of(n + 1).id not in rows
    everything = L.table_doc_ids(500_000, order_ids)
    assert len(everything) == ds.n_real
    assert not {p.id for p in ds.query_passages} & everything
    small = replace(ds, order=ds.order[: N_QUERIES + 50], hashes=ds.hashes[: N_QUERIES + 50])
    assert L.table_doc_ids(1_000, [h[:16] for h in small.hashes]) == frozenset(
        ds.passage_of(r).id for r in range(1, 51)
    )


def test_coverage_grows_with_the_table_and_reaches_every_kind(committed, order_ids):
    sizes = (500, 20_000, 100_000, 500_000)
    cover = L.coverage(committed, order_ids, sizes)
    totals = [sum(cover[n].values()) for n in sizes]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    held_out = set(order_ids[:N_QUERIES])
    answerable = [q for q in committed.queries if not held_out & set(committed.answers(q.id))]
    assert totals[-1] == len(answerable)
    assert {k for k, _ in cover[500_000]} == set(L.KINDS)


# ---- glossaries ---------------------------------------------------------------------------

GLOSSARY = """<html><head><title>Glossary</title></head><body><div role="main">
<h1>Glossary</h1>
<dl class="glossary">
<dt id="term-a">abstract thing<a class="headerlink" href="#term-a">¶</a></dt>
<dd><p>An abstract thing is something that is defined here in one sentence. It has a second
sentence too.</p><p>A further paragraph of the definition that says more about it.</p>
<dl><dt>nested term inside</dt><dd><p>A nested definition list belongs to its parent term here.</p>
</dd></dl></dd>
<dt>ACID</dt>
<dd><p>Atomicity, Consistency, Isolation, and Durability of all transactions.</p></dd>
</dl></div></body></html>"""


def test_glossary_terms_pair_with_their_definition_passages():
    parser = eg.GlossaryText(("role", "main"))
    parser.feed(GLOSSARY)
    parser.close()
    entries = parser.entries()
    assert [e.term for e in entries] == ["abstract thing", "ACID"]
    first = [p for b in entries[0].blocks for p in ec.passages(b)]
    assert first[0].startswith("An abstract thing is something")
    assert any("nested definition list" in p for p in first)
    assert entries[1].blocks == (
        "Atomicity, Consistency, Isolation, and Durability of all transactions.",
    )


def _installed_as_recorded() -> bool:
    recorded = {s.name: s.version for s in chunks.read_sources()}
    packages = {s.name: s.package for s in ec.SOURCES}
    return all(ec.package_version(packages[name]) == recorded[name] for name, _ in eg.GLOSSARIES)


@pytest.mark.skipif(
    not _installed_as_recorded(),
    reason="the glossaries' packages of the recorded versions are not installed",
)
def test_the_committed_glossaries_are_what_the_script_makes_from_the_packages(tmp_path):
    out = tmp_path / "glossaries.jsonl"
    assert eg.main(["--out", str(out)]) == 0
    assert out.read_bytes() == (L.LABELS_DIR / L.GLOSSARIES_FILE).read_bytes()
