"""Giving the memory of closed sessions back to the operating system.

The Keeper, a thread started once per process, limits glibc to one malloc arena
(`limit_malloc_arenas`); when sessions have been dropped for good or the last tab has closed,
and the count has settled, it gives memory back once: a collection, `gc.freeze` of what is
left (so Python's own collections skip the model and caches while tabs are open), then
`malloc_trim(0)`.

Two kinds of collection. With no tab open, a full one: `gc.unfreeze` first, so that everything
is looked at (about half a second with the model and the dataset loaded, and it pauses every
thread). While tabs are open, only what was made since the last freeze: a closed session's
objects are all younger than that, and this takes a small part of the time, so nobody's click
waits half a second for it. A cycle that reaches into frozen objects waits for the next full
one, which runs when the last tab closes, and while tabs stay open at most every
`full_every` seconds. The app's servers start with `SERVER_ENV` (`PYTHONMALLOC=malloc`) so
that small objects live in glibc's heap, whose free pages `malloc_trim` returns.

What reads the sessions is passed in (lib/ui/st_internals.py); when it returns None the Keeper
skips that check, and when it raises (Streamlit's internals changed) it says so once and stops.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
# Added to the environment of every app server process (it must be set before Python starts).
SERVER_ENV = {"PYTHONMALLOC": "malloc"}
MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Sessions:
    """What the server holds at one check."""

    active: int  # connected tabs
    held: int  # active ones and closed ones kept for their TTL
    expired: int = 0  # closed sessions whose TTL passed, dropped at this check


@dataclass(frozen=True)
class Returned:
    """One give-back: what the collector freed and the process's resident memory around it."""

    sessions_dropped: int
    sessions_expired: int  # of those, the ones whose TTL passed: shut down by the app
    objects_freed: int
    rss_before: int | None
    rss_after: int | None
    seconds: float
    trimmed: bool
    full: bool = True  # everything looked at (gc.unfreeze first), or only the unfrozen

    def line(self) -> str:
        rss = ""
        if self.rss_before is not None and self.rss_after is not None:
            back = (self.rss_before - self.rss_after) / MB
            rss = (
                f"; resident memory {self.rss_before / MB:,.0f} MB -> "
                f"{self.rss_after / MB:,.0f} MB ({back:,.0f} MB returned)"
            )
        n, e = self.sessions_dropped, self.sessions_expired
        why = f"{n} closed session{'s' if n != 1 else ''} dropped" if n else "no tab open"
        why += f" ({e} after the TTL, shut down)" if e else ""
        took = f"in {self.seconds:.2f} s"
        kind = "" if self.full else " (new objects only)"
        return f"memory: {why}; {self.objects_freed:,} objects collected{kind}{rss} {took}"


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc (musl's C library has another name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


LIBC = _libc()


def limit_malloc_arenas(n: int = 1) -> bool:
    """Let glibc create no more malloc arenas than `n` (those already made stay in use)."""
    return bool(LIBC is not None and LIBC.mallopt(M_ARENA_MAX, n) == 1)


def malloc_trim() -> bool:
    """Return glibc's free pages to the OS; whether anything was returned."""
    return bool(LIBC is not None and LIBC.malloc_trim(0) == 1)


def rss() -> int | None:
    """This process's resident memory, in bytes (Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def give_back(sessions_dropped: int = 0, sessions_expired: int = 0, full: bool = True) -> Returned:
    """Collect every object (`full`) or those made since the last freeze, freeze the
    survivors, and return free pages to the OS."""
    before = rss()
    t0 = time.perf_counter()
    if full:
        gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    trimmed = malloc_trim()
    seconds = time.perf_counter() - t0
    return Returned(
        sessions_dropped, sessions_expired, freed, before, rss(), seconds, trimmed, full
    )


class Keeper:
    """Decides, at each `check`, whether to give memory back or collect the young objects.

    A give-back waits until no session has been dropped for `settle` seconds (sessions whose
    TTL passed together are returned together), and, while tabs are connected, until `gap`
    seconds after the previous one (it pauses every thread for a moment); with drops that
    never settle it runs after `patience` seconds. It is a full collection when no tab is
    open or the last full one is `full_every` seconds old, otherwise of the unfrozen only."""

    def __init__(
        self,
        read: Callable[[], Sessions | None],
        *,
        tick: float = 2.0,
        settle: float = 5.0,
        gap: float = 30.0,
        patience: float = 60.0,
        full_every: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        give_back: Callable[..., Returned] = give_back,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.read = read
        self.tick, self.settle, self.gap, self.patience = tick, settle, gap, patience
        self.full_every = full_every
        self.clock = clock
        self._give_back = give_back
        self.report = report
        self.previous: Sessions | None = None
        self.dropped = 0  # sessions dropped since the last give-back
        self.expired = 0  # of those, dropped by `read` when their TTL passed
        self.first_drop: float | None = None
        self.last_drop: float | None = None
        self.last_give_back: float | None = None
        self.last_full: float | None = None
        self.returned: list[Returned] = []

    def check(self) -> Returned | None:
        """One look at the sessions; gives memory back when it is time (the Returned)."""
        now = self.clock()
        s = self.read()
        if s is None:
            return None
        previous, self.previous = self.previous, s
        fell = 0 if previous is None else max(0, previous.held - s.held)
        dropped = max(fell, s.expired)
        # The last tab closed: a give-back now pauses nobody (and freezes what the first
        # visits loaded, so that the collections while tabs are open are cheap).
        quiet = previous is not None and previous.active > 0 and s.active == 0
        if dropped or quiet:
            self.dropped += dropped
            self.expired += s.expired
            self.first_drop = self.first_drop if self.first_drop is not None else now
            self.last_drop = now
        if self.first_drop is not None and self._due(now, s):
            full = (
                s.active == 0 or self.last_full is None or now - self.last_full >= self.full_every
            )
            result = self._give_back(self.dropped, self.expired, full=full)
            if full:
                self.last_full = now
            self.returned.append(result)
            self.dropped, self.expired, self.first_drop, self.last_drop = 0, 0, None, None
            self.last_give_back = now
            if self.report is not None:
                self.report(result.line())
            return result
        return None

    def _due(self, now: float, s: Sessions) -> bool:
        settled = now - self.last_drop >= self.settle
        waited = now - self.first_drop >= self.patience
        spaced = (
            s.active == 0 or self.last_give_back is None or now - self.last_give_back >= self.gap
        )
        return (settled or waited) and spaced

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.tick):
            try:
                self.check()
            except Exception as e:  # never take the server down; say why once, and stop
                if self.report is not None:
                    self.report(f"memory: the keeper stopped: {e!r}")
                return


def start_keeper(read: Callable[[], Sessions | None], **kwargs) -> tuple[Keeper, threading.Event]:
    """Limit malloc's arenas and start a Keeper on a daemon thread; returns it and its stop."""
    limit_malloc_arenas()

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if os.environ.get("PYTHONMALLOC") != SERVER_ENV["PYTHONMALLOC"]:
        report(
            "memory: Python's own allocator keeps its arenas after sessions close; start the "
            "server with PYTHONMALLOC=malloc (as make run does) to give them back"
        )
    keeper = Keeper(read, report=report, **kwargs)
    stop = threading.Event()
    threading.Thread(target=keeper.run, args=(stop,), name="memory-keeper", daemon=True).start()
    return keeper, stop
