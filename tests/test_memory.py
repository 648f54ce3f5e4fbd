"""lib/core/memory.py: the Keeper gives memory back when sessions are dropped for good or the last
tab closes, once the count has settled, and not while tabs are open more often than its gap;
a give-back collects reference cycles and freezes what is left; and on the real app, a closed
session whose TTL passed is dropped and shut down by the app itself, then given back."""

from __future__ import annotations

import asyncio
import gc
import re
import sys
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lib.core.memory import Keeper, Returned, Sessions, give_back

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from st_client import StreamlitSession  # noqa: E402


class Script:
    """A clock and the sessions the keeper reads at each tick; records its give-backs."""

    def __init__(self, **kwargs):
        self.now = 0.0
        self.sessions: Sessions | None = Sessions(0, 0)
        self.calls: list[tuple[float, int]] = []
        self.expired: list[int] = []
        self.full: list[bool] = []
        self.keeper = Keeper(
            lambda: self.sessions, clock=lambda: self.now, give_back=self._give_back, **kwargs
        )

    def _give_back(self, dropped: int, expired: int, full: bool) -> Returned:
        self.calls.append((self.now, dropped))
        self.expired.append(expired)
        self.full.append(full)
        return Returned(dropped, expired, 0, None, None, 0.0, False, full)

    def ten_tabs_clicking(self, rounds: int) -> None:
        """Ten tabs open while one closed session reaches its TTL every 6 s, `rounds` times."""
        self.tick(10, 12)
        for _ in range(rounds):
            self.tick(10, 11, expired=1, seconds=2)
            self.tick(10, 11, seconds=2)
            self.tick(10, 11, seconds=2)

    def tick(self, active: int, held: int, expired: int = 0, *, seconds: float = 2.0) -> None:
        self.now += seconds
        self.sessions = Sessions(active, held, expired)
        self.keeper.check()


def test_sessions_dropped_for_good_are_given_back_once_the_count_settles():
    s = Script(settle=5, gap=30)
    s.tick(0, 3)  # three closed tabs, kept for their TTL
    s.tick(0, 1, expired=2)  # two reached their TTL together
    s.tick(0, 0, expired=1)  # and the third a moment later
    s.tick(0, 0)
    s.tick(0, 0)
    assert s.calls == []  # 4 s since the last drop: not settled yet
    s.tick(0, 0)
    assert s.calls == [(s.now, 3)] and s.expired == [3]
    s.tick(0, 0, seconds=60)
    assert len(s.calls) == 1  # nothing dropped since: nothing to do


def test_a_session_dropped_by_streamlit_itself_counts_as_the_count_falling():
    s = Script(settle=5)
    s.tick(2, 4)
    s.tick(2, 3)  # dropped at someone's disconnect, not by the keeper: no `expired`
    for _ in range(3):
        s.tick(2, 3)
    assert [d for _, d in s.calls] == [1]


def test_the_last_tab_closing_is_a_give_back_of_its_own():
    s = Script(settle=5, gap=30)
    s.tick(1, 1)
    s.tick(0, 1)  # closed, kept for its TTL: nothing dropped, but nobody is connected
    s.tick(0, 1)
    s.tick(0, 1)
    assert s.calls == []
    s.tick(0, 1)
    assert [d for _, d in s.calls] == [0]


def test_while_tabs_are_open_give_backs_are_at_least_the_gap_apart():
    s = Script(settle=5, gap=30)
    s.ten_tabs_clicking(40)
    times = [t for t, _ in s.calls]
    assert len(times) >= 3
    assert all(b - a >= 30 for a, b in zip(times, times[1:], strict=False))
    assert sum(d for _, d in s.calls) <= 40


def test_while_tabs_are_open_only_the_new_objects_are_collected_and_fully_now_and_then():
    s = Script(settle=5, gap=30, full_every=600)
    s.ten_tabs_clicking(200)
    times = [t for t, _ in s.calls]
    assert s.full[0] and not all(s.full)  # the first freezes what the first visits loaded
    fulls = [t for t, f in zip(times, s.full, strict=True) if f]
    assert len(fulls) >= 2
    last_full = times[0]
    for t, full in zip(times[1:], s.full[1:], strict=True):  # full: the first one 600 s after
        assert full == (t - last_full >= 600)
        last_full = t if full else last_full
    s.tick(0, 11)  # the last tab closes: a full one, whatever the clock says
    for _ in range(4):
        s.tick(0, 11)
    assert s.full[-1] and s.calls[-1][0] - fulls[-1] < 600


def test_drops_that_never_settle_are_given_back_after_its_patience():
    s = Script(settle=5, gap=0, patience=20)
    s.tick(5, 100)
    for held in range(99, 80, -1):  # a session dropped at every tick
        s.tick(5, held)
    assert s.calls and s.calls[0][0] - 2 >= 20


def test_no_drop_and_no_reading_mean_nothing_to_do():
    s = Script()
    for n in range(1, 10):
        s.tick(n, n)  # sessions arriving
    s.sessions = None  # Streamlit's internals changed: nothing read
    s.now += 100
    s.keeper.check()
    assert s.calls == []


class Node:
    def __init__(self):
        self.me = self


def test_give_back_collects_cycles_and_freezes_what_is_left():
    gc.disable()  # so that only give_back collects
    try:
        garbage = Node()
        gone = weakref.ref(garbage)
        del garbage
        assert gone() is not None  # a cycle: only the collector frees it
        result = give_back(3, 2)
        assert gone() is None and result.objects_freed >= 1
        assert result.sessions_dropped == 3 and gc.get_freeze_count() > 0
        line = result.line()
        assert re.match(r"memory: 3 closed sessions dropped \(2 after the TTL, shut down\); ", line)
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_give_back_while_tabs_are_open_leaves_the_frozen_alone_and_collects_the_new():
    gc.disable()  # so that only give_back collects
    try:
        old = Node()
        old_gone = weakref.ref(old)
        gc.freeze()  # a cycle frozen while it lived
        del old  # now garbage, but only a full collection looks at frozen objects
        new = Node()
        new_gone = weakref.ref(new)
        del new
        result = give_back(1, 1, full=False)
        assert new_gone() is None and old_gone() is not None  # the frozen were not looked at
        assert not result.full and "(new objects only)" in result.line()
        assert give_back(0, 0, full=True).full and old_gone() is None
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.db
def test_the_app_drops_an_expired_session_and_gives_its_memory_back(pg_url, tmp_path):
    from conftest import serve_app

    log = tmp_path / "streamlit.log"

    async def one_visit(url: str) -> str:
        async with StreamlitSession(url, timeout=120) as session:
            result = await session.open("")
            assert not result.failed, result
            return session.session_id

    with serve_app(log, DATABASE_URL=pg_url, STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL="2") as url:
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API may hold this thread's loop
            assert pool.submit(asyncio.run, one_visit(url)).result()
        # The TTL (2 s), a tick (2 s) and the settling (5 s): waited for, generously.
        deadline = time.monotonic() + 90
        dropped = None
        while dropped is None and time.monotonic() < deadline:
            time.sleep(1)
            dropped = re.search(
                r"memory: 1 closed session dropped \(1 after the TTL, shut down\); [\d,]+ "
                r"objects collected; resident memory [\d,]+ MB -> [\d,]+ MB",
                log.read_text(),
            )
    assert dropped, log.read_text()[-3000:]
    assert "the keeper stopped" not in log.read_text()
