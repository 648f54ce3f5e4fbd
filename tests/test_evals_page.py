"""The Evals lesson: its stored report (a real run of the page's five systems on a small table,
with labels made from the rows it holds), the view made of it, the job that refuses a size
too small for the lab's labels, and the page under AppTest and in Chromium."""

from __future__ import annotations

import pytest
from browser_util import exceptions, open_page
from playwright.sync_api import expect
from test_evals import made_labels

from lib.core import jobs as queue
from lib.dataset.passages import load_dataset
from lib.harness import size_jobs
from lib.lessons.evals import reports, view

pytestmark = pytest.mark.db

N = 2_400  # a size no other test builds


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture(scope="module")
def prepared(db, ds):
    """Size N with its index and ground truth (a size job), ready as the page asks."""
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


def test_the_report_holds_every_system_its_queries_and_their_judgements(db, ds, stored):
    report = stored.report
    assert [s["name"] for s in report["systems"]] == [
        "exact", "hnsw:10", "hnsw:40", "hnsw:100", "fts",
    ]  # fmt: skip
    assert report["queries"] == len(report["labelled"]) > 40
    for s in report["systems"]:
        assert set(s["per_query"]) <= set(report["labelled"])
        assert 0 <= s["metrics"]["ndcg@10"]["low"] <= s["metrics"]["ndcg@10"]["high"] <= 1
    assert report["systems"][0]["exact_proved"] is True
    again = reports.stored(db, ds, N)
    assert again is not None and again.ran_at == stored.ran_at  # what the page reads


def test_the_view_shows_each_system_with_its_interval_and_the_link_to_recall(stored):
    report = stored.report
    frame = view.metrics_frame(report)
    assert list(frame["system"]) == [s["label"] for s in report["systems"]]
    exact = report["systems"][0]["metrics"]["ndcg@10"]
    assert (
        frame.loc[0, "nDCG@10"] == f"{exact['mean']:.3f} [{exact['low']:.3f}, {exact['high']:.3f}]"
    )
    link = view.recall_link_frame(report)
    assert list(link["system"]) == ["HNSW ef_search=10", "HNSW ef_search=40", "HNSW ef_search=100"]
    assert (
        (link["recall@10 against the exact scan"] > 0)
        & (link["recall@10 against the exact scan"] <= 1)
    ).all()
    kinds = view.kinds_frame(report)
    assert set(kinds["kind of query"]) == {"passage", view.KIND_LABELS["heading"]}
    assert kinds["best"].notna().all()


def test_the_regression_verdict_follows_the_gates_rule(stored):
    report = stored.report
    c = view.comparison(report, "exact", "fts")
    assert c is not None and c["a"] == "exact" and c["b"] == "fts"
    reverse = view.comparison(report, "fts", "exact")
    assert reverse["difference"] == pytest.approx(-c["difference"])
    words = view.verdict(report, "exact", "fts")
    assert f"{c['difference']:+.3f}" in words
    assert ("a regression gate would pass it" in words) != (
        view.significant(c) and c["difference"] < 0
    )


def test_the_drill_down_marks_the_answer_and_says_where_it_came(stored):
    report = stored.report
    qid = next(iter(report["labelled"]))
    judged = report["labelled"][qid]["judged"]
    answers = [d for d, r in judged.items() if r == 2]
    tables = view.drill_rows(report, qid, judged, {})
    ranks = view.answer_rank(report, qid, answers)
    for s in report["systems"]:
        top = s["per_query"][qid]["top"]
        frame = tables[s["label"]]
        assert list(frame["relevance"]) == [judged.get(d, 0) for d in top]
        rank = ranks[s["label"]]
        assert (rank is None) == (not set(answers) & set(top))


def test_a_job_on_a_size_too_small_for_the_labels_fails_with_a_clear_message(db, ds, prepared):
    job = reports.request(db, N)
    worker = queue.Worker(db, ds, lanes=(job.lane,))
    try:
        done = queue.wait(db, job.job, timeout=600)
    finally:
        worker.stop()
    assert done.state == "failed"
    assert done.error.startswith(f"{N:,} rows hold the answers of only")
    assert "100,000 rows or more" in done.error


def test_the_page_shows_the_stored_report_under_apptest(pg_url, monkeypatch, stored):
    from apptest_util import app_at

    at = app_at("pages/6_Evals.py", pg_url, monkeypatch)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    headers = [h.value for h in at.subheader]
    assert "Which system finds the right answer" in headers
    assert "One query, drilled down" in headers
    assert len(at.dataframe) >= 3 + len(stored.report["systems"])
    shown = " ".join(c.value for c in at.code)
    assert "SET LOCAL transaction_read_only = on" in shown  # the SQL that ran, as it ran


@pytest.mark.browser
def test_the_page_renders_in_chromium_with_its_table_plot_and_drill_down(app_url, page, stored):
    open_page(page, f"{app_url}/Evals")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("One query, drilled down")).to_be_visible(timeout=120_000)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
    assert page.locator('[data-testid="stDataFrame"]').count() >= 4
    assert exceptions(page) == []


def test_a_reports_bars_are_drawn_once_per_report_object():
    """stored_reports.figure_of: the same spec for the same report object, a new one for
    another object (a report read again), both the figure report_view draws."""
    from lib.ui import report_view, stored_reports

    def report(mean: float) -> dict:
        m = {"mean": mean, "low": mean - 0.1, "high": mean + 0.1}
        return {"systems": [{"name": "hnsw", "label": "HNSW", "input": "vector",
                             "metrics": {"ndcg@10": m}}]}  # fmt: skip

    first, again = report(0.5), report(0.7)
    spec = stored_reports.figure_of(first, {"hnsw": "H"})
    assert stored_reports.figure_of(first, {"hnsw": "H"}) is spec
    assert spec.to_dict() == report_view.figure(first, names={"hnsw": "H"}).to_dict()
    other = stored_reports.figure_of(again, {"hnsw": "H"})
    assert other is not spec
    assert other.to_dict() == report_view.figure(again, names={"hnsw": "H"}).to_dict()
