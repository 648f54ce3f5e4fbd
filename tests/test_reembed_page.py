"""The Re-embedding lesson: its job on a small demo table (a real migration to
paraphrase-MiniLM-L3-v2 while k-NN queries run, 0 errors, every phase recorded), the trap
and the guard, the drift job, and the page under AppTest (the stored run, the switch both
ways) and in Chromium."""

from __future__ import annotations

import pytest
from browser_util import exceptions, open_page
from playwright.sync_api import expect

from lib.core import jobs as queue
from lib.dataset.passages import load_dataset
from lib.lessons.reembed import demo
from lib.lessons.reembed import jobs as lesson_jobs

pytestmark = pytest.mark.db

N = 400  # a size the page does not offer: no other test builds it


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


def _run(db, ds, kind: str, n: int):
    job = lesson_jobs.request(db, kind, n)
    worker = queue.Worker(db, ds, lanes=(job.lane,))
    try:
        done = queue.wait(db, job.job, timeout=900)
    finally:
        worker.stop()
    assert done.state == "done", done.error
    return done


@pytest.fixture(scope="module")
def migrated(db, ds):
    _run(db, ds, lesson_jobs.MIGRATION, N)
    found = demo.stored(db, "migration", N)
    assert found is not None
    return found


def test_the_job_migrates_under_queries_with_no_error_and_records_every_phase(db, migrated):
    report = migrated.report
    assert report["errors"] == 0
    assert set(report["phases"]) == set(demo.PHASES)
    for phase, p in report["phases"].items():
        assert p["errors"] == 0 and p["min_rows"] == demo.K, phase
        assert p["queries"] > 0 and p["p95_ms"] >= p["p50_ms"] > 0
    q = report["queries"]
    assert len(q["t"]) == len(q["ms"]) == len(q["phase"]) == report["total"]
    assert set(q["phase"]) == set(range(len(demo.PHASES)))
    assert q["t"] == sorted(q["t"]) and not any(q["error"])
    assert len(q["switched"]) == 1  # the guard switched the stream's model once, at the cutover
    assert report["backfill"]["rows"] == N and report["backfill"]["rate"] > 0
    assert report["ceiling"]["rate"] > 0 and report["index_seconds"] > 0
    whats = [r["what"] for r in report["ran"]]
    for step in ("plan", "write batch", "build the index", "cutover"):
        assert step in whats
    cut = next(r for r in report["ran"] if r["what"] == "cutover")["text"]
    assert cut.startswith("BEGIN;") and "CREATE OR REPLACE VIEW" in cut
    write = next(r for r in report["ran"] if r["what"] == "write batch")["text"]
    assert "UPDATE" in write and len(write) <= 3 * demo.MAX_SHOWN
    assert demo.view_model(db, N) == demo.B


def test_the_trap_returns_rows_and_the_wrong_ones(migrated):
    trap = migrated.report["trap"]
    assert trap["rows"] == [demo.K] * demo.HELD_OUT  # nothing errors, every query answered
    assert trap["chance"] < trap["mean"] < 0.8  # more than chance, far from the same rows
    assert "SET LOCAL enable_indexscan = off" in trap["example"]
    assert trap["ndcg"]["queries"] < demo.MIN_LABELLED and "right" not in trap["ndcg"]


def test_before_and_after_each_model_against_its_own_exact_truth(migrated):
    sides = migrated.report["before_after"]
    assert [s["model"] for s in sides] == [demo.A, demo.B]
    for s in sides:
        assert 0.5 < s["recall"] <= 1 and s["index_bytes"] > 0 and s["build_seconds"] > 0
        assert s["index_used"]


def test_the_guard_refuses_the_other_model_and_answers_its_own(db, ds, migrated):
    g = demo.guard(db, ds, N)
    assert g is not None and g.view_model == demo.B
    assert demo.A in g.refused and "embed it with" in g.refused
    assert any("One-Time Filter: false" in line for line in g.plan)
    assert g.answered == demo.K
    assert "WHERE model = $1" in g.refused_sql


def test_the_page_shows_the_stored_run_the_trap_and_the_guard_and_switches(
    db, pg_url, monkeypatch, migrated
):
    from apptest_util import app_at

    at = app_at("pages/8_Re_embedding.py", pg_url, monkeypatch)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    headers = [h.value for h in at.subheader]
    for h in ("The trap", "The guard", "Zero-downtime re-embedding, live", "Before and after"):
        assert h in headers
    shown = " ".join(c.value for c in at.code)
    assert "WHERE model = $1" in shown and "CREATE OR REPLACE VIEW" in shown
    body = " ".join(m.value for m in at.markdown)
    assert "0 errors" in body
    assert demo.view_model(db, N) == demo.B
    at.button(key="reembed_rollback").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert demo.view_model(db, N) == demo.A
    assert any("CREATE OR REPLACE VIEW" in c.value for c in at.code)
    at.button(key="reembed_cutover").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert demo.view_model(db, N) == demo.B


def test_the_drift_job_stores_every_signal_and_when_it_fired(db, ds):
    _run(db, ds, lesson_jobs.DRIFT, 2_000)
    found = demo.stored(db, "drift", 2_000)
    assert found is not None
    r = found.report
    assert len(r["months"]) == 12 and r["rows"] == 2_000
    assert set(r["series"]) == set(r["signals"]) == set(r["fired"])
    assert r["first"] and r["fired"]["row_distance"] == r["arrives"]
    assert all("transaction_read_only = on" in t for t in r["scripts"].values())
    assert "public.query_log" in demo.own_table_sql(r["threshold"])


@pytest.mark.browser
def test_the_page_renders_in_chromium(app_url, page, migrated):
    open_page(page, f"{app_url}/Re_embedding")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("The trap", exact=True)).to_be_visible(timeout=120_000)
    expect(main.get_by_text("Zero-downtime re-embedding, live")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
    assert exceptions(page) == []


def test_the_latency_figure_sums_every_query_it_was_given(migrated):
    """The figure draws windows, not queries: each window's count, median, p95 and slowest
    come from the recorded latencies, and together the windows hold every query."""
    import numpy as np
    import plotly.graph_objects as go

    from lib.lessons.reembed import view

    report = migrated.report
    q = report["queries"]
    rows = view.latency_windows(report)
    assert sum(r["queries"] for r in rows) == len(q["ms"])
    assert max(r["max"] for r in rows) == max(q["ms"])
    width = view.window_seconds(report)
    first = min(rows, key=lambda r: r["t"])
    start = min(q["t"])
    ms = [m for t, m, p in zip(q["t"], q["ms"], q["phase"], strict=True)
          if t - start < width and q["phase_names"][p] == first["phase"]]  # fmt: skip
    assert first["queries"] == len(ms) and first["p95"] == float(np.percentile(ms, 95))
    spec = view.latency_figure(report).to_dict()
    go.Figure(spec)  # a valid plotly spec
    assert len(str(spec)) < 100_000  # windows, not one point per query
    names = {t["name"] for t in spec["data"] if t.get("showlegend")}
    assert names == {p for p in q["phase_names"] if p in {r["phase"] for r in rows}}
