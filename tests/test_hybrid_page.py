"""The Hybrid search lesson: its stored report (a real run of the page's eight systems on a
small table, with labels made from the rows it holds, filed under the page's kinds), one query
run now through every ranker (each statement pasted into psql, each fused row's origin checked
against the two sides' own lists, BM25 two ways within the stated tolerance), and the page
under AppTest and in Chromium."""

from __future__ import annotations

import pytest
from browser_util import exceptions, open_page
from playwright.sync_api import expect
from psql_util import assert_same_results
from test_evals import made_labels

from lib.core import jobs as queue
from lib.core.embeddings.cache import EmbeddingCache
from lib.dataset import text_tables
from lib.dataset.passages import load_dataset
from lib.harness import evals, size_jobs
from lib.harness.labels import Query
from lib.lessons.hybrid import live, reports, view
from lib.ui import report_view

pytestmark = pytest.mark.db

N = 2_400  # the Evals page's test size: built once for both


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture(scope="module")
def prepared(db, ds):
    job = size_jobs.request(db, ds, N)
    worker = queue.Worker(db, ds, lanes=(job.lane,))
    try:
        done = size_jobs.wait(db, job, timeout=600)
    finally:
        worker.stop()
    assert done.state == "done", done.error


@pytest.fixture(scope="module")
def stored(db, ds, prepared):
    return reports.measure(db, ds, N, labels=made_labels(ds, N), min_queries=1)


@pytest.fixture(scope="module")
def query(stored):
    """A labelled query of the report whose words full text finds."""
    labelled = stored.report["labelled"]
    qid = next(q for q in sorted(labelled) if q.startswith("heading-"))
    return qid, labelled[qid]


@pytest.fixture(scope="module")
def ranked(db, ds, minilm, stored, query, tmp_path_factory):
    cache = EmbeddingCache(tmp_path_factory.mktemp("hybrid_page") / "embeddings.sqlite")
    text = query[1]["text"]
    vector = evals.query_vectors(minilm, [text], cache)[0]
    return live.run(db, ds, N, text_tables.table_name(N), text, vector, live.Knobs())


def test_queries_are_filed_by_kind_and_identifiers_found_by_their_shape():
    def kind(text: str, label_kind: str = "faq") -> str:
        return reports.kind_of(Query("q", label_kind, "test", "x", text))

    for text in ("What is sched_load_balance?", "Options for --parseopt", "Is there a scanf()?",
                 "Using importlib.metadata", "What is 6pack?", "ext4 and x86"):  # fmt: skip
        assert kind(text) == "identifier", text
    assert kind("How does the merge work?") == "question"
    assert kind("What is FUSE?") == "question"  # an acronym alone is English enough
    assert kind("Object Walk", "heading") == "known_item"
    assert kind("tree-ish", "glossary") == "term"


def test_the_report_holds_every_ranker_and_fusion_with_the_text_sides_cost(stored):
    report = stored.report
    assert report["suite"] == "hybrid"
    assert [s["name"] for s in report["systems"]] == [
        "hnsw:100", "fts", "bm25", "bm25_sparse", "hybrid", "hybrid:text=bm25_sparse",
        "hybrid:convex", "hybrid:rerank=20",
    ]  # fmt: skip
    assert set(report["queries_per_kind"]) <= {"identifier", "known_item", "passage"}
    assert report["queries_per_kind"].get("known_item", 0) > 10
    assert report["bm25_terms"] > 1000 and report["bm25_seconds"] > 0
    assert report["text_index_bytes"] > 0
    for s in report["systems"]:
        assert 0 <= s["metrics"]["ndcg@10"]["low"] <= s["metrics"]["ndcg@10"]["high"] <= 1
    rerank = report["systems"][-1]
    assert rerank["rerank"].startswith("MaxSim re-rank of the top 20")


def test_the_evals_pages_report_and_the_hybrid_one_are_stored_apart(db, ds, stored):
    from lib.lessons.evals import reports as evals_reports

    again = reports.stored(db, ds, N)
    assert again is not None and again.ran_at == stored.ran_at
    other = evals_reports.stored(db, ds, N)
    assert other is None or other.report.get("suite", "evals") == "evals"


def test_bm25_in_sql_and_as_sparsevec_give_the_same_top_10_on_the_stored_run(stored):
    same, compared = live.stored_agreement(stored.report)
    assert compared == stored.report["queries"]
    assert same >= 0.95 * compared, (same, compared)


def test_each_ranker_ran_the_sql_it_shows_and_psql_gives_the_same_rows(pg_url, ranked):
    assert [r.name for r in ranked] == [
        "hnsw:100", "fts", "bm25", "bm25_sparse", "hybrid", "rerank",
    ]  # fmt: skip
    for r in ranked:
        if r.script is None:
            continue
        assert "SET LOCAL transaction_read_only = on" in r.script.text()
        assert_same_results(r.script, pg_url)
        assert list(r.keys) == [row[0] for row in r.script.rows][: live.SHOWN]


def test_each_fused_row_says_truly_where_it_came_from(ranked):
    by = {r.name: r for r in ranked}
    vector, text, fused = by["hnsw:100"], by["bm25"], by["hybrid"]
    sides = zip(fused.vector_rank, fused.text_rank, strict=True)
    assert fused.keys and all(v is not None or t is not None for v, t in sides)
    for key, v, t in zip(fused.keys, fused.vector_rank, fused.text_rank, strict=True):
        if v is not None and v <= live.SHOWN:
            assert vector.keys[v - 1] == key
        if t is not None and t <= len(text.keys):
            assert text.keys[t - 1] == key
    rerank = by["rerank"]
    assert set(rerank.keys) <= set(fused.script.rows[i][0] for i in range(20))


def test_bm25_two_ways_agree_on_the_query_within_the_stated_tolerance(ranked):
    by = {r.name: r for r in ranked}
    a = live.agreement(by["bm25"], by["bm25_sparse"])
    assert a.compared >= 5
    assert a.max_relative is not None and a.max_relative < live.REL


def test_a_query_full_text_cannot_match_still_gets_the_vector_sides_rows(
    db, ds, minilm, stored, tmp_path
):
    text = "qqxzv wwkjh"  # no lexeme of the table
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    vector = evals.query_vectors(minilm, [text], cache)[0]
    ranked = live.run(db, ds, N, text_tables.table_name(N), text, vector, live.Knobs(rerank=0))
    by = {r.name: r for r in ranked}
    assert by["fts"].keys == () and by["bm25"].keys == ()
    assert len(by["hybrid"].keys) == live.SHOWN
    assert all(t is None for t in by["hybrid"].text_rank)


def test_the_view_marks_relevant_rows_and_the_cost_of_each_system(ds, stored, ranked, query):
    judged = query[1]["judged"]
    doc_id = evals.lab_doc_ids(ds)
    fused = next(r for r in ranked if r.name == "hybrid")
    frame = view.ranked_frame(fused, live.texts(ds, fused.keys), judged, doc_id)
    assert list(frame["rel"]) == [judged.get(doc_id(k), 0) for k in fused.keys]
    assert all(f != "—" for f in frame["from"])
    cost = view.cost_frame(stored.report)
    assert list(cost["system"]) == [s["label"] for s in stored.report["systems"]]
    assert cost.loc[0, "nDCG@10 against HNSW"] == "(the baseline)"
    kinds = report_view.kinds_frame(stored.report)
    assert report_view.KIND_LABELS["known_item"] in set(kinds["kind of query"])


def test_the_page_shows_the_stored_report_under_apptest(pg_url, monkeypatch, stored):
    from apptest_util import app_at

    at = app_at("pages/7_Hybrid_search.py", pg_url, monkeypatch)
    at.run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    headers = [h.value for h in at.subheader]
    assert "One query through every ranker" in headers
    assert "Measured on the test queries" in headers
    assert len(at.dataframe) >= 4 + 3  # the rankers (re-rank off at first; full text may find
    # no row), the tables
    assert "FULL OUTER JOIN keyword" not in " ".join(c.value for c in at.code)  # until opened
    at.session_state["hybrid_sql"] = True  # the expander of the SQL each ranker ran, opened
    at.run(timeout=120)
    shown = " ".join(c.value for c in at.code)
    assert "FULL OUTER JOIN keyword" in shown  # the fused SQL that ran, as it ran
    assert not at.error


def test_your_own_words_are_shown_as_text_and_run(pg_url, monkeypatch, stored):
    from apptest_util import app_at

    at = app_at("pages/7_Hybrid_search.py", pg_url, monkeypatch)
    at.run(timeout=120)
    at.radio(key="hybrid_how").set_value("Your own words").run(timeout=120)
    typed = "**bold** <b>git</b> [x](http://e.example) merge"
    at.text_input(key="hybrid_own").set_value(typed).run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert typed in [t.value for t in at.text]  # st.text: never Markdown nor HTML
    assert any("no labels" in c.value for c in at.caption)


@pytest.mark.browser
def test_the_page_renders_in_chromium_with_every_ranker_and_the_table(app_url, page, stored):
    open_page(page, f"{app_url}/Hybrid_search")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("Measured on the test queries")).to_be_visible(timeout=120_000)
    expect(main.get_by_text("One query through every ranker")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
    # the rankers (full text may say "no row") and the report's tables
    assert page.locator('[data-testid="stDataFrame"]').count() >= 4 + 3
    assert exceptions(page) == []


def test_with_a_voyage_key_the_fused_list_is_re_ranked_by_voyages_endpoint(
    pg_url, monkeypatch, stored
):
    from apptest_util import app_at
    from voyage_fake import FakeVoyage

    with FakeVoyage("test-key") as fake:
        at = app_at("pages/7_Hybrid_search.py", pg_url, monkeypatch)  # (no key at home)
        monkeypatch.setenv("VOYAGE_API_KEY", "test-key")
        monkeypatch.setenv("VOYAGE_BASE_URL", fake.base_url)
        at.run(timeout=120)
        at.select_slider(key="hybrid_rerank").set_value(20)
        at.radio(key="hybrid_reranker").set_value("voyage").run(timeout=120)
        assert not at.exception, [e.value for e in at.exception]
        reranked = [fake_body for fake_body in fake.bodies() if "documents" in fake_body]
        assert fake.problems == []
    assert len(reranked) == 1 and len(reranked[0]["documents"]) == 20
    from lib.ui.text import plain

    labels = " ".join(m.value for m in at.markdown)
    assert plain("then Voyage rerank-2.5 re-rank of the top 20") in labels
