"""Filtered search against the real PostgreSQL: the filtered table, the iterative scans, the
exact filtered truth, the fixes, the trap, the command line and the SQL a learner pastes."""

import io
import json
import re
from contextlib import redirect_stdout
from dataclasses import replace

import numpy as np
import pytest
from psql_util import assert_same_results, psql

from lib.core import jobs as queue
from lib.core.chunks import TITLES
from lib.dataset import builds
from lib.dataset.passages import load_dataset
from lib.harness import recall
from lib.lessons.filtered import jobs as filtered_jobs
from lib.lessons.filtered import search as fs
from lib.lessons.filtered import tables as filtered_tables
from lib.recall import main as recall_cli
from lib.recall import parse_where

pytestmark = pytest.mark.db

N = 5_000  # the smallest size on offer: 50 rows at 1%, 5 at 0.1%
ONE_PERCENT = 3


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture(scope="module")
def table(db, ds):
    builds.load_table(db, ds, N)
    return filtered_tables.build(db, ds, N)


@pytest.fixture(scope="module")
def rows(db, table):
    """Every row of the filtered table, read back: ids, vectors, categories."""
    got = db.fetchall(f"SELECT id, embedding, category FROM {table.name} ORDER BY id")
    ids = np.array([r[0] for r in got])
    vectors = np.array([r[1].to_numpy() for r in got], dtype=np.float64)
    categories = np.array([r[2] for r in got])
    return ids, vectors, categories


def cell(mode: str, category: int = ONE_PERCENT, **knobs) -> fs.Cell:
    return fs.Cell.of(fs.category_filter(category), "hnsw", mode, **knobs)


def test_the_filtered_table_has_categories_of_known_share_and_b_tree_indexes(db, ds, table):
    for c in filtered_tables.CATEGORIES:
        assert table.counts[c.value] == round(N * c.share)
    assert sum(table.counts.values()) == N
    assert sum(table.chapters.values()) == ds.real_rows(N)  # every real row has its chapter
    names = filtered_tables.index_names(table.name)
    indexes = dict(db.fetchall("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                               (table.name,)))  # fmt: skip
    assert "USING btree (category)" in indexes[names["category"]]
    assert "USING btree (chapter)" in indexes[names["chapter"]]
    assert "USING hnsw" in indexes[names["hnsw"]] and "WHERE" not in indexes[names["hnsw"]]
    assert indexes[names["partial"]].endswith(f"WHERE (category = {filtered_tables.PARTIAL.value})")
    # built once: asked again, the same table as recorded, not a new one
    assert filtered_tables.build(db, ds, N).built_at == table.built_at


def test_chapters_come_from_the_manual_headings_and_folders(ds):
    labels = set(ds.corpus.doc_chapters())
    assert {"PostgreSQL · Chapter 11. Indexes", "PostgreSQL · Reference: SQL commands"} <= labels
    assert {"Python · library", "Linux kernel · admin-guide", "SQLite", "Git"} <= labels
    rows = ds.chapters(50)
    assert rows == [ds.corpus.chapters([int(ds.order[len(ds.queries) + i])])[0] for i in range(50)]
    for i, label in enumerate(rows, start=1):  # the row's own manual comes first
        assert label.split(" · ")[0] == TITLES[ds.passage_of(i).source]


def test_with_the_iterative_scan_off_a_one_percent_filter_returns_fewer_than_k_rows(db, ds, table):
    run = fs.measure(db, ds, table, cell("off"))
    assert run.matching == N // 100 and all(e == 10 for e in run.expected)
    assert run.short > 0 and run.missing_rows > 0
    assert run.indexes == [filtered_tables.index_names(table.name)["hnsw"]]
    # what EXPLAIN ANALYZE counts: the index handed over its ef_search candidates, no more
    assert run.max_visited <= 40


def test_with_strict_order_they_return_k_rows_in_distance_order(db, ds, table):
    run = fs.measure(db, ds, table, cell("strict_order"))
    assert run.short == 0 and run.rows_returned == [10] * run.queries
    assert run.disordered == 0
    off = fs.measure(db, ds, table, cell("off"))
    assert run.mean_recall > off.mean_recall
    assert run.median_visited > off.median_visited  # it kept scanning


def test_filtered_recall_equals_a_numpy_recomputation_over_the_same_rows(db, ds, table, rows):
    ids, vectors, categories = rows
    k = 10
    for mode in ("off", "relaxed_order"):
        run = fs.measure(db, ds, table, cell(mode))
        mine = categories == ONE_PERCENT
        normed = vectors[mine] / np.linalg.norm(vectors[mine], axis=1, keepdims=True)
        recalls, clear = [], []
        for q, got in zip(ds.queries.astype(np.float64), run.ids, strict=True):
            distance = 1 - normed @ (q / np.linalg.norm(q))
            order = np.argsort(distance)
            # a near-tie at the k-th place could rank differently in float32: left out
            clear.append(distance[order[k]] - distance[order[k - 1]] > 1e-6)
            truth = set(ids[mine][order[:k]].tolist())
            recalls.append(len(truth & set(got)) / k)
        assert sum(clear) >= 90
        kept = [(a, b) for a, b, ok in zip(run.recall, recalls, clear, strict=True) if ok]
        assert [a for a, _ in kept] == pytest.approx([b for _, b in kept], abs=1e-12)
        if all(clear):
            assert run.mean_recall == pytest.approx(float(np.mean(recalls)), abs=1e-12)


def test_the_exact_filtered_plan_reads_no_vector_index(db, ds, table):
    f = fs.category_filter(ONE_PERCENT)
    truth = fs.truth(db, ds, table, f)
    assert recall.is_exact_plan(truth.plan)
    assert "Seq Scan" in truth.plan_nodes and not any("Index" in n for n in truth.plan_nodes)
    assert all(len(ids) == N // 100 for ids in truth.ids)  # 50 rows match, fewer than 100
    # stored: asked again, the same answers without running the exact scans again
    again = fs.truth(db, ds, table, f)
    assert again.ran_at == truth.ran_at and again.ids == truth.ids
    # and what a run reports about it
    run = fs.measure(db, ds, table, cell("off"))
    assert run.truth_proved and run.truth_plan == truth.plan_nodes


def test_the_fixes_side_by_side(db, ds, table):
    cells = fs.fixes(ONE_PERCENT, 10, 40, 20_000, "off")
    runs = {c.path: fs.measure(db, ds, table, c) for c in cells if c.path != "hnsw"}
    partial = next(c for c in cells if c.filter.value == filtered_tables.PARTIAL.value)
    runs["partial"] = fs.measure(db, ds, table, partial)
    names = filtered_tables.index_names(table.name)
    # the planner, left alone with a 1% filter, takes the B-tree and sorts exactly
    assert names["category"] in runs["planner"].indexes
    assert runs["planner"].mean_recall == 1.0 and runs["planner"].short == 0
    # the partial index answers its own category in full
    assert runs["partial"].indexes == [names["partial"]] and runs["partial"].short == 0
    # relaxed_order re-sorted with "+ 0" comes back in order; PostgreSQL skips a plain re-sort
    assert "Sort" in runs["cte"].plan and runs["cte"].disordered == 0
    assert "Sort" not in runs["cte_plain"].plan
    assert [set(i) for i in runs["cte"].ids] == [set(i) for i in runs["cte_plain"].ids]


def test_a_threshold_no_row_meets_makes_relaxed_order_read_up_to_max_scan_tuples(db, ds, table):
    inside, outside = fs.trap_cells(10, 40, 1_000)
    trap = fs.measure(db, ds, table, inside)
    cte = fs.measure(db, ds, table, outside)
    assert trap.exact_closer == [0] * trap.queries  # the exact scan: no row is that close
    assert trap.rows_returned == [0] * trap.queries == cte.rows_returned
    assert min(trap.visited) >= 1_000  # it read on to max_scan_tuples (pgvector stops near it)
    assert max(cte.visited) < 1_000


def test_statement_timeout_cancels_the_trap_and_the_run_says_so(db, ds, table, monkeypatch):
    monkeypatch.setattr(fs, "TRAP_TIMEOUT_MS", 1)
    inside, _ = fs.trap_cells(10, 40, 50_000)
    run = fs.measure(db, ds, table, inside)
    assert run.settings["statement_timeout"] == "1ms"
    assert run.cancelled == run.queries and run.rows_returned == [-1] * run.queries


def test_runs_are_stored_and_shared(db, ds, table):
    c = cell("relaxed_order", ef_search=64)
    first = fs.stored_or_measured(db, ds, table, c)
    again = fs.stored_or_measured(db, ds, table, c)
    assert again.ran_at == first.ran_at and again.ids == first.ids
    assert fs.stored(db, table, [c, cell("off", ef_search=64)]) == {c: first}
    versions = fs.stored_versions(db, table, [c, cell("off", ef_search=64)])
    assert list(versions) == [c]  # only what is stored, each with when it was
    fresh = fs.stored_or_measured(db, ds, table, c, again=True)
    assert fs.stored(db, table, [c])[c].latencies_ms == fresh.latencies_ms
    # measured again: a new stored time, so the page's kept run is read again
    assert fs.stored_versions(db, table, [c])[c] != versions[c]


def test_a_cell_drops_max_scan_tuples_when_the_scan_is_off():
    a = cell("off", max_scan_tuples=1_000)
    assert a == cell("off", max_scan_tuples=50_000) and "hnsw.max_scan_tuples" not in a.settings()
    assert cell("strict_order", max_scan_tuples=1_000).settings()["hnsw.max_scan_tuples"] == 1_000
    with pytest.raises(ValueError, match="iterative_scan"):
        fs.Cell(fs.category_filter(3), mode="fast")


@pytest.mark.parametrize("path", ["hnsw", "cte", "planner", "threshold", "threshold_cte"])
def test_each_statement_pasted_into_psql_gives_the_same_rows(db, pg_url, ds, table, path):
    mode = "off" if path in ("hnsw", "planner") else "relaxed_order"
    threshold = fs.TRAP_THRESHOLD if path.startswith("threshold") else None
    c = fs.Cell.of(fs.category_filter(2), path, mode, threshold=threshold)
    script = fs.script(db, table.name, c, ds.queries[0])
    assert script.error is None
    assert (
        script.text().startswith("BEGIN;\n-- ")
        and "SET LOCAL hnsw.ef_search = 40;" in script.text()
    )
    assert_same_results(script, pg_url)


def test_the_plan_shown_is_the_plan_psql_prints(db, pg_url, ds, table):
    c = cell("strict_order")
    explained = fs.script(db, table.name, c, ds.queries[0], explain=True)

    def nodes(lines):  # node types, without the timings that differ from run to run
        return [re.sub(r"\s*\(actual .*", "", n) for n in recall.text_plan_nodes(lines)]

    shown = nodes([r[0] for r in explained.rows])
    printed = psql(pg_url, explained.text())[-1]
    assert nodes([r[0] for r in printed.rows]) == shown
    assert shown[:2] == ["Limit", "Index Scan"]


def test_the_trap_proof_pasted_into_psql_counts_no_row(db, pg_url, ds, table):
    inside, _ = fs.trap_cells(10, 40, 20_000)
    proof = fs.exact_count_script(db, table.name, inside, ds.queries[0])
    assert proof.rows == [(0,)]
    assert_same_results(proof, pg_url)


def test_two_requests_share_one_job_that_builds_truths_and_default_runs(db, ds):
    n = 2_000
    a = filtered_jobs.request(db, ds, n)
    b = filtered_jobs.request(db, ds, n)
    assert a.id == b.id and a.state == "queued"
    worker = queue.Worker(db, ds)
    try:
        done = filtered_jobs.wait(db, a, timeout=600)
    finally:
        worker.stop()
    assert done.state == "done", done.error
    assert done.built and filtered_jobs.progress(db, done).fraction == 1.0
    table = filtered_tables.status(db, ds, n)
    assert table is not None and table.n == n
    assert set(fs.stored(db, table, fs.default_cells())) == set(fs.default_cells())


def test_the_command_line_filters_with_where_and_iterative_scan(pg_url, table):
    def run(*args: str) -> dict:
        out = io.StringIO()
        with redirect_stdout(out):
            code = recall_cli(["--database-url", pg_url, "--size", str(N), *args])
        return {"code": code, **json.loads(out.getvalue())}

    off = run("--where", "category=3", "--iterative-scan", "off")
    assert off["code"] == 0 and off["table"] == table.name
    assert off["extra"]["queries_short"] > 0 and off["extra"]["matching_rows"] == N // 100
    assert off["exact_proved"] and off["index_settings"]["enable_sort"] == "off"
    strict = run("--where", "category = 3", "--iterative-scan", "strict_order")
    assert strict["extra"]["queries_short"] == 0
    assert strict["index_settings"]["hnsw.iterative_scan"] == "strict_order"
    refused = run("--where", "category = 3; DROP TABLE x")
    assert refused["code"] == 1 and "invalid input syntax for type integer" in refused["error"]


def test_where_takes_a_column_and_a_value_only():
    assert parse_where("category=3") == ("category", 3)
    assert parse_where(" chapter = 'Chapter 11. Indexes' ") == ("chapter", "Chapter 11. Indexes")
    for bad in ("category", "1=1 OR true", "=3", "category="):
        with pytest.raises(ValueError, match="column=value"):
            parse_where(bad)


def test_the_lesson_sentence_carries_the_measured_numbers(db, ds, table):
    from lib.lessons.filtered import view as filtered_view

    run = fs.measure(db, ds, table, cell("off"))
    text = filtered_view.rows_sentence(run, table)
    assert text.startswith(f"At 1% selectivity (50 of {N:,} rows), {run.short} of 100 queries")
    assert f"recall@10 against the exact filtered truth is {run.mean_recall:.3f}" in text
    assert f"{run.short} of 100 queries returned fewer rows than 10:" in text
    tiny = fs.measure(db, ds, table, cell("off", category=4))  # 5 rows match, fewer than 10
    assert tiny.expected == [5] * 100 and tiny.short > 0
    assert f"{tiny.short} of 100 queries returned fewer rows than the exact filtered truth " in (
        filtered_view.rows_sentence(tiny, table)
    )


def test_the_page_measures_one_query_set_and_runs_nothing_for_closed_boxes(
    db, ds, table, pg_url, monkeypatch
):
    from apptest_util import app_at

    at = app_at("pages/5_Filtered_search.py", pg_url, monkeypatch)
    at.query_params["rows"] = str(N)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Queries short of LIMIT 10"].endswith("of 100")
    shown = " ".join(c.value for c in at.code)
    assert "EXPLAIN" not in shown  # the plan box is closed: its EXPLAIN did not run
    assert "WHERE category = $3" not in shown  # nor the statement boxes'
    assert "CREATE TABLE filtered_n5000_d384 AS" in shown  # the layout, rendered, not run


def test_a_filtered_job_on_a_fresh_cache_embeds_first_and_says_how_far_it_is(db, tmp_path):
    fresh = load_dataset(cache_path=tmp_path / "embeddings.sqlite")  # only the queries cached
    n = 300  # not a size on offer: its own job row, no other test's table
    assert fresh.missing(n) == n
    table = filtered_tables.table_name(n, fresh.dimension)
    job = queue.request(db, filtered_jobs.KIND, {"n": n}, "test", table)
    try:
        filtered_jobs.embed(queue.Context(db, job, fresh), fresh, n)
    finally:
        db.fetchall("UPDATE lab_jobs SET state = 'done' WHERE id = %s RETURNING 1", (job.id,))
    done = filtered_jobs.get(db, job.id)
    assert (done.done, done.total) == (n, n) and fresh.missing(n) == 0
    midway = filtered_jobs.Job(replace(done.job, state="embedding", done=100, finished_at=None))
    assert "Embedding the passages 300 rows need: 100 of 300 done" in (
        filtered_jobs.progress(db, midway).text
    )


def test_loading_a_table_embeds_what_the_cache_lacks(db, tmp_path):
    fresh = load_dataset(cache_path=tmp_path / "embeddings.sqlite")
    n = 250
    assert fresh.missing(n) == n
    builds.load_table(db, fresh, n)
    assert fresh.missing(n) == 0
    got = db.fetchall(f"SELECT embedding FROM recall_n{n}_d{fresh.dimension} ORDER BY id")
    assert np.array_equal(np.array([r[0].to_numpy() for r in got]), np.asarray(fresh.real[:n]))
