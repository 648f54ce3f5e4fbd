"""A room: with an instructor token set, an attendee's click on shared work is refused with a
clear message and starts nothing; the instructor's link starts it; on a laptop (no token)
everyone may."""

from __future__ import annotations

import pytest
from apptest_util import app_at
from streamlit.testing.v1 import AppTest

from lib.core import jobs as queue
from lib.harness import size_jobs
from lib.ui import room

pytestmark = pytest.mark.db

PAGE = "pages/4_Index_tuning.py"
N = 100_000  # the page's default size, never prepared by the tests
TOKEN = "a-test-token"


def tuning_page(pg_url, monkeypatch, token: str | None, link: str | None = None) -> AppTest:
    from apptest_util import PROJECT_DIR

    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    if token:
        monkeypatch.setenv(room.TOKEN_ENV, token)
    else:
        monkeypatch.delenv(room.TOKEN_ENV, raising=False)
    at = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=180)
    if link is not None:
        at.query_params[room.PARAM] = link
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def prepare_button(at: AppTest):
    return next(b for b in at.button if b.label == f"Prepare {N:,} rows")


def test_an_attendees_click_on_shared_work_is_refused_and_starts_nothing(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, TOKEN)
    prepare_button(at).click().run()
    assert any("Ask the instructor" in i.value for i in at.info)
    assert size_jobs.live(db, N) is None


def test_a_wrong_token_is_an_attendee(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, TOKEN, link="not-the-token")
    prepare_button(at).click().run()
    assert any("Ask the instructor" in i.value for i in at.info)
    assert size_jobs.live(db, N) is None


def test_the_instructors_link_starts_it(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, TOKEN, link=TOKEN)
    prepare_button(at).click().run()
    job = size_jobs.live(db, N)
    try:
        assert job is not None
        assert not any("Ask the instructor" in i.value for i in at.info)
        assert room.PARAM not in at.query_params  # the token leaves the address bar
    finally:
        if job is not None:
            queue.cancel(db, job.id)
            assert queue.wait(db, job.job, timeout=120).state == "cancelled"
            assert queue.wait(db, job.job, timeout=120).state == "cancelled"


def test_on_a_laptop_everyone_may(pg_url, monkeypatch, db):
    at = tuning_page(pg_url, monkeypatch, None)
    prepare_button(at).click().run()
    job = size_jobs.live(db, N)
    try:
        assert job is not None
    finally:
        if job is not None:
            queue.cancel(db, job.id)
            assert queue.wait(db, job.job, timeout=120).state == "cancelled"


# ---- heavy clicks a minute ---------------------------------------------------------------------


def clicks_script(shared: bool) -> None:
    import streamlit as st

    from lib.ui import room

    if st.button("Heavy"):
        started = room.may("Heavy work", shared=shared)
        st.session_state["started"] = st.session_state.get("started", 0) + started
    st.text(f"started {st.session_state.get('started', 0)}")


def clicks_app(monkeypatch, *, token=None, link=None, limit="3", shared=False) -> AppTest:
    monkeypatch.setenv(room.LIMIT_ENV, limit)
    if token:
        monkeypatch.setenv(room.TOKEN_ENV, token)
    else:
        monkeypatch.delenv(room.TOKEN_ENV, raising=False)
    at = AppTest.from_function(clicks_script, args=(shared,))
    if link is not None:
        at.query_params[room.PARAM] = link
    return at.run()


def click(at: AppTest, times: int) -> AppTest:
    for _ in range(times):
        at.button[0].click().run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def started(at: AppTest) -> int:
    return int(at.text[-1].value.split()[-1])


def test_on_a_laptop_heavy_clicks_stop_at_the_limit_with_when_to_try_again(monkeypatch):
    at = click(clicks_app(monkeypatch, limit="3"), 3)
    assert started(at) == 3 and not at.warning
    click(at, 1)
    assert started(at) == 3  # the fourth did not start
    (warning,) = at.warning
    assert "Not now: try again in" in warning.value and "Heavy work did not start" in warning.value
    seconds = int(warning.value.split("try again in ")[1].split()[0])
    assert 1 <= seconds <= 60


def test_a_minute_later_the_session_may_again(monkeypatch):
    import time

    at = click(clicks_app(monkeypatch, limit="2"), 3)
    assert started(at) == 2
    past = time.time() - room.WINDOW_SECONDS - 1  # as if the two had been a minute ago
    at.session_state[room.CLICKS_KEY] = [past, past]
    click(at, 1)
    assert started(at) == 3 and not at.warning


def test_reloading_the_page_does_not_reset_the_limit(monkeypatch):
    """A reload is a new session; the browser (its XSRF cookie, here one fixed key) is the
    same, and so are its clicks."""
    monkeypatch.setattr(room, "_browser", lambda: "cookie:one-browser")
    room._BROWSERS.clear()
    at = click(clicks_app(monkeypatch, limit="2"), 2)
    assert started(at) == 2 and not at.warning
    again = click(clicks_app(monkeypatch, limit="2"), 1)  # the reload: a fresh session
    assert started(again) == 0
    assert any("Not now: try again in" in w.value for w in again.warning)
    monkeypatch.setattr(room, "_browser", lambda: "cookie:another-browser")
    other = click(clicks_app(monkeypatch, limit="2"), 1)
    assert started(other) == 1 and not other.warning
    room._BROWSERS.clear()


def test_a_browsers_xsrf_cookie_names_it_whatever_mask_each_load_gives_it():
    token = bytes.fromhex("ea33fbe8f9f88056")

    def masked(mask: bytes) -> str:
        hidden = bytes(b ^ mask[i % 4] for i, b in enumerate(token))
        return f"2|{mask.hex()}|{hidden.hex()}|1796657501"

    first, reload = masked(b"\x66\x11\x11\x3b"), masked(b"\xdd\x4c\x92\x8d")
    assert first != reload  # as Tornado writes it at each page load
    assert room._unmasked(first) == room._unmasked(reload) == token
    assert room._unmasked("not-a-tornado-cookie") == b"not-a-tornado-cookie"


def test_the_app_keeps_its_own_record_of_each_decision_when_asked(monkeypatch, tmp_path):
    """RECORD_ENV: a JSON line per limited decision, which bench_load --abuse judges by."""
    import json

    record = tmp_path / "heavy.jsonl"
    monkeypatch.setenv(room.RECORD_ENV, str(record))
    at = click(clicks_app(monkeypatch, limit="2"), 3)
    assert started(at) == 2
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [d["allowed"] for d in lines] == [True, True, False]
    assert {d["action"] for d in lines} == {"Heavy work"}
    assert len({d["session"] for d in lines}) == 1


def test_the_rooms_instructor_is_not_limited(monkeypatch):
    at = click(clicks_app(monkeypatch, token=TOKEN, link=TOKEN, limit="2", shared=True), 5)
    assert started(at) == 5 and not at.warning and not at.info


def test_in_a_room_an_attendee_is_limited_on_their_own_heavy_work_and_asks_for_shared(
    monkeypatch,
):
    at = click(clicks_app(monkeypatch, token=TOKEN, limit="2"), 3)
    assert started(at) == 2 and len(at.warning) == 1
    at = click(clicks_app(monkeypatch, token=TOKEN, limit="2", shared=True), 1)
    assert started(at) == 0 and any("Ask the instructor" in i.value for i in at.info)


def test_a_page_button_counts_against_the_limit_and_a_refused_click_queues_nothing(
    pg_url, monkeypatch, db
):
    monkeypatch.setenv(room.LIMIT_ENV, "1")
    at = tuning_page(pg_url, monkeypatch, None)
    prepare_button(at).click().run()
    job = size_jobs.live(db, N)
    assert job is not None
    queue.cancel(db, job.id)
    assert queue.wait(db, job.job, timeout=120).state == "cancelled"
    at.run()
    prepare_button(at).click().run()
    assert any("Not now: try again in" in w.value for w in at.warning)
    assert size_jobs.live(db, N) is None


# ---- Index tuning's sweeps ----------------------------------------------------------------------


def test_in_a_room_only_the_instructor_starts_a_pinned_configurations_sweep(
    pg_url, monkeypatch, db
):
    """A built configuration without a stored sweep: an attendee's visit asks the instructor
    and queues nothing; the instructor's visit queues its sweep."""
    from test_tuning import built, prepared

    from lib.dataset import config_tables
    from lib.dataset.index_configs import Config
    from lib.dataset.passages import load_dataset

    # this test's own configuration (no sweep stored for it), on a copy of its own: a second
    # halfvec index on the shared quantized copy would change other tests' plans
    n, config = 5000, Config("hnsw", 12, 40)
    ds = load_dataset()
    prepared(db, ds, n)
    place = built(db, ds, n, config).place
    assert place.is_copy
    try:
        _sweeps_wait_for_the_instructor(pg_url, monkeypatch, db, n, config)
    finally:
        config_tables.drop_config(db, place)


def _sweeps_wait_for_the_instructor(pg_url, monkeypatch, db, n, config) -> None:
    contains = {"n": n, "config": config.resolved(n).to_json()}

    def sweeps() -> int:
        return len(queue.find(db, "tuning_sweep", contains))

    def visit(link: str | None) -> AppTest:
        monkeypatch.setenv(room.TOKEN_ENV, TOKEN)
        at = app_at(
            PAGE, pg_url, monkeypatch,
            query_params={room.PARAM: link} if link is not None else None,
            state={"tuning_size": n, "tuning_pinned": [config.to_json()]},
        ).run()  # fmt: skip
        assert not at.exception, [e.value for e in at.exception]
        return at

    before = sweeps()
    at = visit(None)
    assert sweeps() == before
    assert any("No curve yet for" in i.value and "Ask the instructor" in i.value for i in at.info)
    visit(TOKEN)
    assert sweeps() == before + 1
    (job,) = queue.find(db, "tuning_sweep", contains)[:1]
    if job.state in ("queued", "running"):
        queue.cancel(db, job.id)
    queue.wait(db, job, timeout=300)
