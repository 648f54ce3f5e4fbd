"""Pinned configurations' copies are dropped by the instructor (on a laptop, the learner),
after a confirmation; an attendee in a room is not offered it. Against the real PostgreSQL,
on the 500-row size."""

from __future__ import annotations

import psycopg
import pytest
from apptest_util import app_at

from lib.core import jobs as queue
from lib.dataset import builds, config_tables, recall_tables
from lib.dataset.index_configs import Config
from lib.dataset.passages import load_dataset
from lib.harness import recall, truths
from lib.lessons.tuning import jobs as tuning_jobs
from lib.ui import room

pytestmark = pytest.mark.db

N = 500
PAGE = "pages/4_Index_tuning.py"
TOKEN = "a-test-token"


@pytest.fixture(scope="module")
def ds():
    return load_dataset()


@pytest.fixture(scope="module")
def size(db, ds):
    """Size N loaded and indexed, with its stored ground truth (what the page needs)."""
    builds.prepare(db, ds, N)
    status = recall_tables.table_status(db, ds, N)
    if truths.of_table(db, ds, status, recall.K) is None:
        truth = recall.ground_truth(db, recall.generated_target(status.table), ds.queries)
        truths.store(db, status.table, status.loaded_at, ds.queries_fingerprint, recall.K, truth)
    return status


def place_of(db, ds, config: Config):
    status = recall_tables.table_status(db, ds, N)
    (s,) = config_tables.statuses(db, ds, N, status, [config.resolved(N)])
    return s


def exists(db, name: str) -> bool:
    return db.fetchone("SELECT to_regclass(%s) IS NOT NULL", (name,))[0]


def test_a_shared_copy_goes_with_the_last_index_on_it(db, ds, size):
    half, binary = Config("halfvec"), Config("binary")
    for config in (half, binary):
        config_tables.build_config(db, ds, N, config)
    h, b = place_of(db, ds, half), place_of(db, ds, binary)
    assert h.place.table == b.place.table and h.built and b.built
    assert config_tables.drop_config(db, h.place) == [h.place.index]
    assert not exists(db, h.place.index) and exists(db, b.place.table)
    assert not place_of(db, ds, half).built and place_of(db, ds, binary).built
    assert config_tables.drop_config(db, b.place) == [b.place.index, b.place.table]
    assert not exists(db, b.place.table)
    assert db.fetchone(
        "SELECT count(*) FROM tuning_copies WHERE table_name = %s", (b.place.table,)
    ) == (0,)


def test_a_copy_being_built_is_not_dropped_and_the_own_index_never(db, ds, size, pg_url):
    config = Config("hnsw", 8, 32)
    config_tables.build_config(db, ds, N, config)
    s = place_of(db, ds, config)
    with psycopg.connect(pg_url, autocommit=True) as builder:  # as a build holds it
        builder.execute("SELECT pg_advisory_lock(hashtext(%s))", (s.place.table,))
        with pytest.raises(config_tables.Busy, match="being built right now"):
            config_tables.drop_config(db, s.place)
    assert exists(db, s.place.index)
    own = place_of(db, ds, Config())
    with pytest.raises(ValueError, match="own index"):
        config_tables.drop_config(db, own.place)
    config_tables.drop_config(db, s.place)


def tuning_page(pg_url, monkeypatch, db, pinned: Config, token=None, link=None):
    if token:
        monkeypatch.setenv(room.TOKEN_ENV, token)
    else:
        monkeypatch.delenv(room.TOKEN_ENV, raising=False)
    at = app_at(PAGE, pg_url, monkeypatch)
    if link:
        at.query_params[room.PARAM] = link
    at.query_params["rows"] = str(N)
    at.session_state["tuning_pinned"] = [pinned.to_json()]
    at.run()
    for job in tuning_jobs.live(db, N):  # the pinned configuration's first sweep
        assert queue.wait(db, job.job, timeout=300).state == "done"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def drop_controls(at):
    return [b for b in at.button if b.label == "Drop it"]


def test_the_instructor_drops_a_pinned_copy_after_confirming(pg_url, monkeypatch, db, ds, size):
    config = Config("hnsw", 12, 40)
    config_tables.build_config(db, ds, N, config)
    s = place_of(db, ds, config)
    at = tuning_page(pg_url, monkeypatch, db, config, token=TOKEN, link=TOKEN)
    (go,) = drop_controls(at)
    assert go.disabled  # not before the confirmation
    at.checkbox(key=f"tuning_drop_sure_{s.config.key()}").check().run()
    (go,) = drop_controls(at)
    go.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not exists(db, s.place.table) and not place_of(db, ds, config).built


def test_an_attendee_is_not_offered_the_drop(pg_url, monkeypatch, db, ds, size):
    config = Config("hnsw", 12, 48)
    config_tables.build_config(db, ds, N, config)
    s = place_of(db, ds, config)
    try:
        at = tuning_page(pg_url, monkeypatch, db, config, token=TOKEN)
        assert drop_controls(at) == []
        assert exists(db, s.place.table)
    finally:
        config_tables.drop_config(db, s.place)
