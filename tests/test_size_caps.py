"""Sizes are capped and the database's disk is checked again when a build is queued, not only
in the widget: the cap always, the free disk where it can be read (an embedded server's data
directory), less what the jobs already queued will take. A refusal queues nothing and is
shown as plain text."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.core import jobs as queue
from lib.core.database import Database
from lib.dataset import sizing
from lib.dataset.index_configs import Config
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import load_dataset
from lib.harness import size_jobs
from lib.lessons.filtered import jobs as filtered_jobs
from lib.lessons.tuning import jobs as tuning_jobs

pytestmark = pytest.mark.db

PAST = sizing.MAX_BUILD_ROWS + 1


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture
def local(pg_url, db):
    """The test server as the app sees an embedded one: its data directory is on this disk."""
    (directory,) = db.fetchone("SELECT current_setting('data_directory')")
    local = Database(
        pg_url, kind="embedded", location="test server", max_size=2, data_directory=Path(directory)
    )
    yield local
    local.close()


@pytest.fixture
def blocker(db):
    """Queue a job (of a kind no worker runs) that says it will take `disk_bytes`."""
    made = []

    def block(disk_bytes: int, key: dict | None = None):
        key = key or {"n": 1, "test": uuid.uuid4().hex}
        job = queue.request(db, "room_test_blocker", key, "big", None, {"disk_bytes": disk_bytes})
        made.append(job)
        return job

    yield block
    for job in made:
        queue.cancel(db, job.id)


def test_past_the_cap_every_kind_of_build_is_refused_when_queued_and_nothing_is_queued(db, ds):
    assert sizing.disk_available(db) is None  # a DATABASE_URL server: only the cap is checked
    config = Config.of_spec(IndexSpec())
    for request in (
        lambda: size_jobs.request(db, ds, PAST),
        lambda: filtered_jobs.request(db, ds, PAST),
        lambda: tuning_jobs.request_build(db, ds, PAST, config),
        lambda: tuning_jobs.request_sweep(db, ds, PAST, config),
    ):
        with pytest.raises(sizing.SizeRefused, match="2,000,000 rows at most"):
            request()
    assert size_jobs.live(db, PAST) is None
    assert tuning_jobs.live(db, PAST) == []
    assert queue.find(db, filtered_jobs.KIND, {"n": PAST}) == []


def test_the_widgets_plan_refuses_past_the_cap_and_says_when_disk_cannot_be_read():
    plan = sizing.plan_size(PAST, 384, memory=24 * 1024**3, disk=None)
    assert not plan.ok and "2,000,000 rows at most" in plan.reason
    fits = sizing.plan_size(sizing.MAX_BUILD_ROWS, 384, memory=24 * 1024**3, disk=None)
    assert fits.ok
    assert "free disk cannot be read" in sizing.describe_plan(fits, None)


def test_a_build_that_the_free_disk_and_the_queue_cannot_hold_is_refused(local, ds, blocker):
    free = sizing.disk_available(local)
    assert free is not None and free > 0
    need = sizing.disk_bytes(500, ds.dimension)
    key = {"n": 500, "test": uuid.uuid4().hex}
    facts = sizing.check_queued(local, 500, ds.dimension, kind="size", key=key, what="500 rows")
    assert facts == {"disk_bytes": need}  # what the job is queued with, for the next check
    blocker(free)  # a queued job that will take every free byte
    with pytest.raises(sizing.SizeRefused) as e:
        sizing.check_queued(local, 500, ds.dimension, kind="size", key=key, what="500 rows")
    assert "the jobs already queued" in str(e.value) and "free" in str(e.value)
    with pytest.raises(sizing.SizeRefused):
        size_jobs.request(local, ds, 1_000_000)
    assert size_jobs.live(local, 1_000_000) is None


def test_a_job_asked_for_again_is_not_counted_twice(local, ds, blocker):
    free = sizing.disk_available(local)
    key = {"n": 500, "test": uuid.uuid4().hex}
    blocker(free, key)  # the same job, live already: asking again takes no more disk
    what = "500 rows"
    kind = "room_test_blocker"
    assert sizing.check_queued(local, 500, ds.dimension, kind=kind, key=key, what=what)
    with pytest.raises(sizing.SizeRefused):
        other = {**key, "test": "another"}
        sizing.check_queued(local, 500, ds.dimension, kind=kind, key=other, what=what)


def refusal_script(db, ds, rows: int) -> None:
    import streamlit as st

    from lib.harness import size_jobs
    from lib.ui import room

    with room.refusals():
        size_jobs.request(db, ds, rows)
        st.text("queued")
    st.text("the page goes on")


def test_a_refusal_on_a_page_is_plain_text_and_the_page_goes_on(db, ds):
    at = AppTest.from_function(refusal_script, args=(db, ds, PAST)).run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = at.error
    assert error.value.startswith("**Refused.**")
    assert r"\(2\,000\,000 rows at most\; a room shares one machine\)" in error.value  # as text
    assert [t.value for t in at.text] == ["the page goes on"]
