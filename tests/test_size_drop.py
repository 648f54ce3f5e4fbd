"""Dropping a size gives its disk back in one go (recall table, index, ground truth, tuning
copies, text and BM25 tables, their records), is refused while a job works on it, and on the
Recall page is the instructor's, behind a confirmation, and does not start a rebuild."""

from __future__ import annotations

import pytest
from apptest_util import app_at
from streamlit.testing.v1 import AppTest
from test_tuning import built, prepared

from lib.core import jobs as queue
from lib.dataset import bm25_tables, recall_tables, text_tables
from lib.dataset.index_configs import Config
from lib.dataset.passages import load_dataset
from lib.harness import size_drop, size_jobs
from lib.ui import room

pytestmark = pytest.mark.db

N = 1000
TOKEN = "a-test-token"


def present(db, names) -> set[str]:
    return {n for n in names if db.fetchone("SELECT to_regclass(%s)", (n,))[0] is not None}


def build_everything(db, ds) -> list[str]:
    prepared(db, ds, N)
    copy = built(db, ds, N, Config("halfvec"))
    text, _ = text_tables.build(db, ds, N)
    bm25, _ = bm25_tables.build(db, text.name, text.loaded_at)
    names = [recall_tables.table_name(N, ds.dimension), copy.place.table, text.name, bm25.name,
             bm25.terms_table]  # fmt: skip
    assert present(db, names) == set(names)
    return names


def test_a_dropped_size_leaves_nothing_and_the_next_request_builds_it_again(db):
    ds = load_dataset()
    names = build_everything(db, ds)
    dropped = size_drop.drop_size(db, N, ds.dimension)
    assert set(dropped) == set(names)
    assert present(db, names) == set()
    status = recall_tables.table_status(db, ds, N)
    assert not status.loaded and status.index is None
    assert (
        db.fetchone("SELECT count(*) FROM recall_truths WHERE table_name = %s", (names[0],))[0] == 0
    )
    assert db.fetchone("SELECT count(*) FROM tuning_copies WHERE source = %s", (names[0],))[0] == 0
    assert size_drop.drop_size(db, N, ds.dimension) == []  # nothing left: nothing to drop
    prepared(db, ds, N)  # and it builds again as if new
    assert recall_tables.table_status(db, ds, N).ready()


def test_a_size_a_job_works_on_is_not_dropped(db):
    ds = load_dataset()
    prepared(db, ds, N)
    table = recall_tables.table_name(N, ds.dimension)
    job = queue.request(db, "size_drop_test", {"n": N}, "small", table)  # no worker runs it
    try:
        with pytest.raises(size_drop.SizeBusy, match="job is working on 1,000 rows"):
            size_drop.drop_size(db, N, ds.dimension)
        assert present(db, [table]) == {table}
    finally:
        queue.cancel(db, job.id)
        queue.wait(db, job, timeout=120)


def recall_page(pg_url, monkeypatch, link: str | None) -> AppTest:
    monkeypatch.setenv(room.TOKEN_ENV, TOKEN)
    at = app_at(
        "pages/3_Recall_at_scale.py", pg_url, monkeypatch,
        query_params={room.PARAM: link} if link is not None else None, state={"recall_size": N},
    ).run()  # fmt: skip
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_on_the_page_only_the_instructor_drops_a_size_after_confirming(pg_url, monkeypatch, db):
    ds = load_dataset()
    prepared(db, ds, N)
    table = recall_tables.table_name(N, ds.dimension)
    attendee = recall_page(pg_url, monkeypatch, None)
    assert not [b for b in attendee.button if b.key == "recall_drop_go"]

    at = recall_page(pg_url, monkeypatch, TOKEN)
    go = next(b for b in at.button if b.key == "recall_drop_go")
    assert go.disabled  # until confirmed
    at.checkbox(key="recall_drop_sure").check().run()
    next(b for b in at.button if b.key == "recall_drop_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert present(db, [table]) == set()
    assert any("1,000 rows were dropped" in i.value for i in at.info)
    assert size_jobs.live(db, N) is None  # the page did not start building it again
    next(b for b in at.button if b.key == f"recall_rebuild_dropped_{N}").click().run()
    job = size_jobs.live(db, N)
    assert job is not None  # until asked
    queue.wait(db, job.job, timeout=300)
    assert recall_tables.table_status(db, ds, N).ready()
