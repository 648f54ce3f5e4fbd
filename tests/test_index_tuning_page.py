"""The Index tuning page under AppTest, against the test run's PostgreSQL."""

from apptest_util import app_at

from lib.harness import size_jobs as jobs

PAGE = "pages/4_Index_tuning.py"


def test_a_size_not_prepared_is_offered_and_not_built_on_a_rerun(pg_url, monkeypatch, db):
    at = app_at(PAGE, pg_url, monkeypatch)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.select_slider(key="tuning_size").value == 100_000  # the default
    assert [b.label for b in at.button] == ["Prepare 100,000 rows"]
    at.run()  # a rerun does not queue the build either: the learner asks for it
    assert jobs.live(db, 100_000) is None and jobs.last(db, 100_000) is None


def test_a_link_opens_the_size_it_names_and_ignores_one_not_on_offer(pg_url, monkeypatch):
    at = app_at(PAGE, pg_url, monkeypatch)
    at.query_params["rows"] = "200,000"
    at.run()
    assert at.select_slider(key="tuning_size").value == 200_000
    other = app_at(PAGE, pg_url, monkeypatch)
    other.query_params["rows"] = "123"
    other.run()
    assert other.select_slider(key="tuning_size").value == 100_000
