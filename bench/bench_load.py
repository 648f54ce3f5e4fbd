"""A room of attendees on one instance: N concurrent sessions clicking through the lesson.

    make bench-load                                    # the default run below
    .venv/bin/python bench/bench_load.py --stress      # adds a run at 1 s think time
    .venv/bin/python bench/bench_load.py --url http://127.0.0.1:8080 --pid 1234 --pid 1235 \
        --p95-target 0.3                               # through `make workshop`
    .venv/bin/python bench/bench_load.py --sessions 5 --duration 20 --baseline 10 --ttl 15
    .venv/bin/python bench/bench_load.py --scenario classic --no-per-page   # issue 8's run
    .venv/bin/python bench/bench_load.py --pages "Distance metrics" --no-mixed
    make bench-load ARGS="--abuse --duration 90"      # the room under abuse (issue 21)

`--abuse` replaces the runs below with two runs of the room under abuse, each on an app of
its own: instructor mode (LAB_INSTRUCTOR_TOKEN set, no attendee has it), then laptop mode (no
token). Of --sessions attendees, ABUSERS press every expensive button each page shows
(prepare or build a size, rebuild the index with other parameters, pin and build Index
tuning configurations, run the evals, measure recall on their own table, "Measure again",
re-embed a demo table or simulate its drift at any size),
type 10⁹ where a size can be typed and upload 20 MB files into Embedding space; the others
click as the room scenario does. It prints the others' p50/p95, the lab_jobs rows created
during the run by kind, the database's size before and after, the refusals the abusers got,
and the verdicts; then it cancels the jobs the run left running.

The room scenario (the default) plays an attendee who does not follow the script: a slider
goes to any value its widget allows (its min, max and step read from the page's own delta
messages), a typed query is the first words of a passage drawn from the whole corpus
(lib.core.chunks), a metric or scan mode is any other option. Every page counts: per page,
a one-session run measures each action's app CPU per click (the server's CPU time from
sending the click to its script_finished, one click at a time) and its latency, then
--sessions sessions click on that page alone; then the mixed run goes through every page.
The printout ends with a table page × action × CPU per click and the targets' verdicts
(issue 22). `--scenario classic` is issue 8's kinder loop (7 ef_search values, 18 queries),
kept to compare layouts before and after.

Each session stands for a browser tab, played by bench/st_client.py over Streamlit's own
websocket protocol (no browser: 30 Chromiums would share the server's 2 cores and measure
themselves).
It loops until the run ends: open Embedding space, type a short query; open Distance
metrics, switch the metric (a fragment rerun); open Recall at scale (500 rows), move
`hnsw.ef_search`; open Filtered search (20,000 rows), switch `hnsw.iterative_scan` (a
fragment rerun over stored query sets), pausing a think time (3 s ± 50% by default) after
every click. Session starts are spread over the first seconds (--ramp). A click's latency
runs from sending its BackMsg to the `script_finished` of the run it caused. Errors: an
exception element on the page, a timeout (--timeout), a disconnect, a click that did not
land on its page; after any but an exception the attendee reloads (a new session).

Without --url the benchmark starts the app as `make run` does (`streamlit run serve.py`, the
project's config, the embedded PostgreSQL or DATABASE_URL) on a free port. It warms the app
first: one session (one per --pid, opened together, so each server behind a proxy gets one)
opens every page and waits until Recall at scale shows its measurement of the 500-row table
and Filtered search its measurements of the 20,000-row filtered table (each built on first
request), so the figures are of the steady state. Then: a one-session baseline (--baseline
seconds, --baseline-think), the N-session run, and with --stress a run at --stress-think.
Each run prints per page and action p50/p95/max latency, throughput, errors, the server's
CPU per interaction and its RSS before, at peak and after the sessions close (with the part
that is pages of files mapped in: libraries, the model's weights); after the main run it waits
out Streamlit's `server.disconnectedSessionTTL` (--ttl; 120 s is Streamlit's default) and
--settle seconds more, in which the app drops the expired sessions and gives their memory
back (lib/core/memory.py), and reads the RSS again. Then the verdict against the targets of
issue 8.

Server figures come from psutil on the Streamlit process (with --url: the process
listening on the URL's port, or every --pid given, e.g. the processes behind a proxy).
The machine is shared: the printout says how busy its cores were, and with what.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

PROJECT_DIR = Path(__file__).resolve().parent.parent
from serving import free_port, wait_healthy  # noqa: E402
from st_client import RunResult, StreamlitSession  # noqa: E402

from lib.core import memory  # noqa: E402

# The targets (issue 22), on this 2-core machine, in one run.
BASELINE_P50_S = 0.040
LOAD_P95_S = 1.0  # one process; through `make workshop` (a proxy, --url): --p95-target 0.3
CPU_PER_CLICK_S = 0.030
MB_PER_SESSION = 15.0
QUIET_SETTLE = 7.0  # seconds after a run's tabs close: the empty server's full collection
TARGET_SESSIONS, TARGET_THINK = 30, 3.0

ES, DM, RS, FS = "Embedding space", "Distance metrics", "Recall at scale", "Filtered search"
IT, EV, HS, RE = "Index tuning", "Evals", "Hybrid search", "Re-embedding"
CLASSIC_STEPS = [
    (ES, "page load"),
    (ES, "type a query"),
    (DM, "page load"),
    (DM, "switch the metric"),
    (RS, "page load (500 rows)"),
    (RS, "move hnsw.ef_search"),
    (FS, "page load (20k rows)"),
    (FS, "switch scan mode"),
]
# The room: every page, and what an attendee does on it. A page's steps start with its load.
ROOM_STEPS = [
    (ES, "page load"),
    (ES, "type a query"),
    (DM, "page load"),
    (DM, "switch the metric"),
    (RS, "page load (500 rows)"),
    (RS, "move hnsw.ef_search"),
    (IT, "page load"),
    (IT, "move the recall target"),
    (FS, "page load (20k rows)"),
    (FS, "switch scan mode"),
    (EV, "page load"),
    (HS, "page load"),
    (HS, "pick a labelled query"),
    (HS, "move RRF's k"),
    (RE, "page load"),
    (RE, "pick another size"),
]
PAGES = list(dict.fromkeys(p for p, _ in ROOM_STEPS))
# Index tuning draws its frontier only for a prepared size (`make prepare`): without one the
# action is skipped, not counted as an error, and the table shows no figure for it.
UNPREPARED_SKIP = {
    (IT, "move the recall target"): "tuning_target",
    (HS, "pick a labelled query"): "hybrid_query",  # (a size with its hybrid report)
    (HS, "move RRF's k"): "hybrid_k",
}
STEPS = ROOM_STEPS  # what the printing walks; --scenario classic sets CLASSIC_STEPS
# Short queries an attendee might type: several sessions type the same ones (cache hits),
# none types the same twice in a row.
QUERIES = [
    "a small cat", "tabby cat", "a puppy", "a red car", "a pickup truck", "a motorbike",
    "a highway", "kitten asleep on a sofa", "dog in the park", "a fast sports car",
    "traffic jam in the rain", "a bicycle", "cup of coffee", "vector index", "a bird",
    "mountain road", "cat and dog", "electric scooter",
]  # fmt: skip
EF_SEARCH = [10, 20, 40, 64, 100, 150, 200]
POOL_SIZE = 5000  # typed queries: the first words of this many passages of the corpus


def query_pool(n: int = POOL_SIZE, seed: int = 0) -> list[str]:
    """What attendees type: the first 2–6 words of `n` passages drawn from the corpus."""
    from lib.core.chunks import load_chunks

    chunks = load_chunks(limit=max(1000, n))
    rng = random.Random(seed)
    pool = []
    for i in rng.sample(range(len(chunks)), min(n, len(chunks))):
        words = chunks.text(i).split()[: rng.randint(2, 6)]
        if words:
            pool.append(" ".join(words))
    return pool


MB = 1024 * 1024
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")


@dataclass
class Click:
    page: str
    action: str
    session: int
    result: RunResult
    app_cpu: float | None = None  # the server's CPU seconds for this click (one session)

    @property
    def failure(self) -> str | None:
        return self.result.failure


@dataclass
class Usage:
    """CPU seconds used so far by the server, PostgreSQL, this client and the machine."""

    server: float | None
    postgres: float | None
    client: float
    machine_busy: float  # CPU seconds the whole machine was busy (all cores)
    at: float


@dataclass
class Run:
    name: str
    sessions: int
    think: float
    duration: float
    clicks: list[Click] = field(default_factory=list)
    wall: float = 0.0
    start: Usage | None = None
    end: Usage | None = None
    rss_before: int | None = None
    rss_peak: int | None = None
    rss_after_close: int | None = None
    files_before: int | None = None
    reloads: int = 0
    steps: list[tuple[str, str]] = field(default_factory=lambda: ROOM_STEPS)
    page: str | None = None  # a run on one page alone
    abuse: list[Click] = field(default_factory=list)  # the abusers' requests (--abuse)


class Server:
    """The serving processes (Streamlit, and the embedded PostgreSQL if known), by psutil."""

    def __init__(self, pids: list[int], pg_pid: int | None) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.pg = psutil.Process(pg_pid) if pg_pid else None
        self.me = psutil.Process()

    def rss(self) -> int | None:
        try:
            return sum(p.memory_info().rss for p in self.procs) if self.procs else None
        except psutil.Error:
            return None

    def file_rss(self) -> int | None:
        """The part of the RSS that is pages of files mapped in (libraries, the model's
        weights): the kernel's page cache, shared by every process mapping the file."""
        try:
            return sum(p.memory_info().shared for p in self.procs) if self.procs else None
        except psutil.Error:
            return None

    def server_cpu(self) -> float | None:
        try:
            return sum(_cpu(p.cpu_times()) for p in self.procs) if self.procs else None
        except psutil.Error:
            return None

    def usage(self) -> Usage:
        server = None
        if self.procs:
            server = sum(_cpu(p.cpu_times()) for p in self.procs)
        postgres = None
        if self.pg is not None:
            try:
                t = self.pg.cpu_times()  # the postmaster, and the backends it has reaped
                postgres = _cpu(t) + t.children_user + t.children_system
                for child in self.pg.children(recursive=True):
                    try:
                        postgres += _cpu(child.cpu_times())
                    except psutil.Error:
                        pass
            except psutil.Error:
                postgres = None
        machine = psutil.cpu_times()
        busy = sum(getattr(machine, f, 0.0) for f in BUSY_FIELDS)  # guest is inside user
        return Usage(server, postgres, _cpu(self.me.cpu_times()), busy, time.perf_counter())


def _cpu(t) -> float:
    return t.user + t.system


# ---- one attendee ----------------------------------------------------------------------


class Attendee:
    def __init__(
        self,
        n: int,
        url: str,
        timeout: float,
        rng: random.Random,
        *,
        steps: list[tuple[str, str]] = ROOM_STEPS,
        pool: list[str] | None = None,
        server: Server | None = None,
    ) -> None:
        self.n = n
        self.session = StreamlitSession(url, timeout=timeout)
        self.rng = rng
        self.steps = steps
        self.room = steps is not CLASSIC_STEPS
        self.pool = pool or QUERIES
        self.server = server  # given: each click's server CPU is measured (one session only)
        self.query = ""
        self.metric = 0
        self.ef = 40
        self.mode = 0
        self.shown: dict = {}  # widget key -> the value this session gave it last

    async def step(self, page: str, action: str) -> RunResult:
        s = self.session
        if action.startswith("page load"):
            return await s.open(page)
        if not self.room:
            return await self._classic(page)
        if page == ES:
            self.query = self.rng.choice(self.pool)
            return await s.set_widget("es_text", self.query)
        if page == DM:
            return await s.set_widget("dm_metric", self._other_option("dm_metric"))
        if page == FS:
            return await s.set_widget("filtered_mode", self._other_option("filtered_mode"))
        if page == IT:
            return await s.set_widget("tuning_target", self._slider_value("tuning_target"))
        if page == HS and action == "pick a labelled query":
            return await s.set_widget("hybrid_query", self._other_option("hybrid_query"))
        if page == HS:
            return await s.set_widget("hybrid_k", self._slider_value("hybrid_k"))
        if page == RE:
            return await s.set_widget("reembed_size", self._slider_value("reembed_size"))
        return await s.set_widget("recall_ef_search", self._slider_value("recall_ef_search"))

    async def _classic(self, page: str) -> RunResult:
        s = self.session
        if page == ES:
            self.query = self.rng.choice([q for q in QUERIES if q != self.query])
            return await s.set_widget("es_text", self.query)
        if page == DM:
            self.metric = (self.metric + 1) % 3  # cosine -> L2 -> inner product -> …
            return await s.set_widget("dm_metric", self.metric)
        if page == FS:
            self.mode = (self.mode + 1) % 3  # off -> strict_order -> relaxed_order -> …
            return await s.set_widget("filtered_mode", self.mode)
        self.ef = self.rng.choice([v for v in EF_SEARCH if v != self.ef])
        return await s.set_widget("recall_ef_search", self.ef)

    def _slider_value(self, key: str) -> float:
        """Any value the slider allows but the one it shows, from its own min, max and step
        as the page sent them (a select_slider's are its options' indexes)."""
        proto = self.session.widget(key).proto
        steps = round((proto.max - proto.min) / proto.step) if proto.step else 0
        shown = self.shown.get(key, proto.default[0] if proto.default else None)
        while True:
            value = round(proto.min + self.rng.randint(0, steps) * proto.step, 10)
            if steps == 0 or shown is None or not math.isclose(value, shown):
                self.shown[key] = value
                return value

    def _other_option(self, key: str) -> str:
        """Any option of a segmented control, a selectbox or a radio but the one it shows."""
        widget = self.session.widget(key)
        proto = widget.proto
        if widget.kind == "button_group":
            options = [o.content for o in proto.options]
            default = options[proto.default[0]] if proto.default else None
        else:
            options = list(proto.options)
            default = options[proto.default] if proto.HasField("default") else None
        shown = self.shown.get(key, default)
        self.shown[key] = self.rng.choice([o for o in options if o != shown] or options)
        return self.shown[key]

    def _has(self, key: str) -> bool:
        return any(w.key == key for w in self.session.widgets())

    def shows(self, page: str) -> bool:
        """Whether the session shows `page` (its title)."""
        return any(n.kind == "heading" and n.proto.body == page for n in self.session.nodes())

    async def loop(self, run: Run, deadline: float, think: float) -> None:
        try:
            while time.perf_counter() < deadline:
                for page, action in self.steps:
                    if time.perf_counter() >= deadline:
                        return
                    widget = UNPREPARED_SKIP.get((page, action))
                    if widget is not None and not self._has(widget):
                        continue  # the page's size is not prepared: it shows no such widget
                    result, cpu = await self._click(page, action)
                    run.clicks.append(Click(page, action, self.n, result, cpu))
                    if time.perf_counter() >= deadline:
                        return
                    await asyncio.sleep(think * self.rng.uniform(0.5, 1.5))
                    if result.status != "ok":
                        # A tab that hangs or drops gets reloaded: a new session.
                        await self.session.close()
                        self.query, self.metric, self.ef, self.mode = "", 0, 40, 0
                        self.shown = {}
                        run.reloads += 1
                        break
        finally:
            await self.session.close()

    async def _click(self, page: str, action: str) -> tuple[RunResult, float | None]:
        """The click's run, and the server's CPU seconds from sending it to its end (only
        when this attendee measures it: alone on the server, so the CPU is this click's)."""
        cpu0 = self.server.server_cpu() if self.server is not None else None
        result = await self._run_click(page, action)
        cpu1 = self.server.server_cpu() if self.server is not None else None
        return result, (cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None)

    async def _run_click(self, page: str, action: str) -> RunResult:
        t0 = time.perf_counter()
        try:
            result = await self.step(page, action)
            if result.status == "ok" and not self.shows(page):
                result.status = "wrong_page"  # the instrument measured some other page
            return result
        except LookupError as e:  # the widget is not on the page
            return RunResult("widget_missing", time.perf_counter() - t0, exceptions=[str(e)])
        except OSError as e:  # the page or the websocket could not be opened
            return RunResult("connect_failed", time.perf_counter() - t0, exceptions=[str(e)])
        except Exception as e:  # a handshake refused, an HTTP error status
            return RunResult("connect_failed", time.perf_counter() - t0, exceptions=[repr(e)])


async def run_sessions(
    url: str,
    server: Server,
    run: Run,
    *,
    ramp: float,
    timeout: float,
    seed: int,
    pool: list[str] | None = None,
) -> Run:
    rng = random.Random(seed)
    measure = server if run.sessions == 1 else None  # one session: each click's CPU is its own
    attendees = [
        Attendee(
            i, url, timeout, random.Random(rng.random()), steps=run.steps, pool=pool,
            server=measure,
        )
        for i in range(run.sessions)
    ]  # fmt: skip
    run.rss_before = server.rss()
    run.files_before = server.file_rss()
    run.rss_peak = run.rss_before
    run.start = server.usage()
    t0 = time.perf_counter()
    deadline = t0 + run.duration

    async def staggered(i: int, a: Attendee) -> None:
        await asyncio.sleep(ramp * i / max(1, run.sessions))
        await a.loop(run, deadline, run.think)

    async def watch() -> None:
        while True:
            rss = server.rss()
            if rss is not None:
                run.rss_peak = max(run.rss_peak or 0, rss)
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(staggered(i, a) for i, a in enumerate(attendees)))
    finally:
        run.wall = time.perf_counter() - t0
        run.end = server.usage()
        watcher.cancel()
    await asyncio.sleep(3)  # the server's side of the closed websockets
    run.rss_after_close = server.rss()
    # With every tab closed the server collects in full once the count settles (5 s, then
    # its 2 s tick; about 0.5 s of paused threads, lib/core/memory.py). A room does that when
    # it empties; the benchmark empties it after every run, so it waits that out rather than
    # bill the next run's first clicks for its own coming and going.
    await asyncio.sleep(QUIET_SETTLE)
    return run


# ---- the room's abuse (issue 21): three attendees press every expensive button ------------

ABUSERS = 3  # --abusers
HUGE_ROWS = "1,000,000,000"  # 10⁹, typed where a size can be typed
UPLOAD_BYTES = 20_000_000  # 20 MB, under server.maxUploadSize (20 MiB)
# Buttons that start heavy work (builds, rebuilds, sweeps, evals, scans, measurements).
EXPENSIVE = re.compile(
    r"^(Prepare|Embed and build|Build|Rebuild|Sweep again|Measure|Run them|Try again|Pin it|"
    r"Simulate)"
)
REFUSALS = {  # what a page says when it starts nothing, as the abusers saw it
    "ask the instructor": "Ask the instructor",
    "clicks a minute": "Not now: try again in",
    "refused (size, disk)": "Refused.",
    "busy": "The database is busy",
}
ABUSE_ACTIONS = [
    (RS, "type 10⁹ rows"),
    (RS, "pick any size"),
    (RS, "rebuild the index"),
    (RS, "measure my own table"),
    (IT, "pick any size"),
    (IT, "pin and build configurations"),
    (FS, "pick any size"),
    (EV, "run the evals"),
    (HS, "press what is there"),
    (RE, "pick any size"),
    (ES, "upload 20 MB"),
]


def bomb(size: int = UPLOAD_BYTES, seed: int = 0) -> bytes:
    """A 20 MB "photo": a PNG header claiming 30,000 × 30,000 pixels, then noise."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
    head += struct.pack(">I", zlib.crc32(chunk))
    return head + random.Random(seed).randbytes(size - len(head))


@dataclass
class Heavy:
    """One press of an expensive button by an abuser, and what the page said."""

    session: int
    at: float  # when the press was sent (the server counts it a little later)
    label: str
    refusal: str | None  # a REFUSALS key, or None: nothing on the page refused it
    took: float = 0.0  # seconds until the page answered


class Abuser(Attendee):
    """An attendee who presses every expensive button on every page, types 10⁹ where a size
    can be typed and uploads 20 MB files; clicks go to `run.abuse`, not `run.clicks`."""

    def __init__(self, *args, upload: bytes, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.upload = upload
        self.heavy: list[Heavy] = []
        self.uploads: Counter = Counter()  # HTTP status of each upload's PUT

    def _refusal(self, first: str | None = None) -> str | None:
        """What the page says refused the press: `first` if its marker is on the page (another
        widget's refusal may be on the page too), else the first REFUSALS marker found."""
        texts = self.session.texts()
        if first is not None and any(REFUSALS[first] in t for t in texts):
            return first
        for name, marker in REFUSALS.items():
            if any(marker in t for t in texts):
                return name
        return None

    async def _press(self, widget, run: Run, page: str, action: str) -> None:
        sent = time.perf_counter()
        result = await self._timed(
            page, action, self.session.set_widget(widget.key or widget.label, True)
        )
        run.abuse.append(Click(page, action, self.n, result))
        if not widget.label.startswith("Pin it") and not (widget.key or "").startswith(
            "tuning_pin_"
        ):
            took = time.perf_counter() - sent
            self.heavy.append(Heavy(self.n, sent, widget.label, self._refusal(), took))

    async def _timed(self, page: str, action: str, coro) -> RunResult:
        t0 = time.perf_counter()
        try:
            return await coro
        except LookupError as e:
            return RunResult("widget_missing", time.perf_counter() - t0, exceptions=[str(e)])
        except (ValueError, NotImplementedError) as e:  # an option the widget does not have
            return RunResult("widget_missing", time.perf_counter() - t0, exceptions=[str(e)])
        except OSError as e:
            return RunResult("connect_failed", time.perf_counter() - t0, exceptions=[str(e)])

    def _expensive(self) -> list:
        return [
            w
            for w in self.session.widgets()
            if w.kind == "button"
            and not w.proto.disabled
            and (EXPENSIVE.match(w.label) or (w.key or "").startswith("tuning_pin_"))
        ]

    async def _press_all(self, run: Run, page: str, action: str, limit: int = 4) -> None:
        """Press the expensive buttons the page shows now (a few, in random order)."""
        pressed: set[str] = set()
        for _ in range(limit):
            left = [w for w in self._expensive() if (w.key or w.label) not in pressed]
            if not left:
                return
            w = self.rng.choice(left)
            pressed.add(w.key or w.label)
            await self._press(w, run, page, action)
            await asyncio.sleep(self.rng.uniform(0.2, 0.6))

    async def _set(self, run: Run, page: str, action: str, key: str, value) -> RunResult:
        result = await self._timed(page, action, self.session.set_widget(key, value))
        run.abuse.append(Click(page, action, self.n, result))
        return result

    async def abuse(self, run: Run, page: str, action: str) -> None:
        s = self.session
        result = await self._timed(page, "page load", s.open(page))
        run.abuse.append(Click(page, "page load", self.n, result))
        if result.status != "ok":
            return
        if action == "type 10⁹ rows":
            await self._set(run, page, action, "recall_other_size", True)
            await self._set(run, page, action, "recall_custom", HUGE_ROWS)
            refusal = self._refusal(first="refused (size, disk)")
            self.heavy.append(Heavy(self.n, time.perf_counter(), "10⁹ rows", refusal))
            await self._press_all(run, page, action)  # a "Build and measure" button, if any
            await self._set(run, page, action, "recall_other_size", False)
            return
        elif action == "pick any size" and page == RS:
            await self._set(run, page, action, "recall_size", self._slider_value("recall_size"))
        elif action == "pick any size" and page == IT:
            await self._set(run, page, action, "tuning_size", self._slider_value("tuning_size"))
        elif action == "pick any size" and page == FS:
            await self._set(run, page, action, "filtered_size", self._slider_value("filtered_size"))
        elif action == "pick any size" and page == RE:
            await self._set(run, page, action, "reembed_size", self._slider_value("reembed_size"))
        elif action == "rebuild the index":
            try:
                s.fill("Index type", self.rng.choice(["hnsw", "ivfflat"]))
                s.fill("m (HNSW)", self.rng.randint(2, 100))
                s.fill("ef_construction (HNSW)", self.rng.randint(4, 1000))
                s.fill("lists (IVFFlat)", self.rng.randint(1, 32768))
            except LookupError:
                pass
        elif action == "measure my own table":
            if any(w.key == "recall_own_column" for w in s.widgets()):
                pick = self._other_option("recall_own_column")
                await self._set(run, page, action, "recall_own_column", pick)
        elif action == "pin and build configurations":
            await self._set(run, page, action, "tuning_custom", True)
            if any(w.key == "tuning_kind" for w in s.widgets()):
                await self._set(run, page, action, "tuning_kind", self._other_option("tuning_kind"))
                await self._set(run, page, action, "tuning_m", self.rng.randint(2, 100))
                await self._set(run, page, action, "tuning_efc", self.rng.randint(4, 1000))
        elif action == "upload 20 MB":
            t0 = time.perf_counter()
            try:
                status, result = await s.upload("es_image", "huge.png", self.upload)
            except LookupError as e:
                status, result = 0, RunResult("widget_missing", 0.0, exceptions=[str(e)])
            except Exception as e:  # an HTTP error talking to the upload route
                status = 0
                result = RunResult("connect_failed", time.perf_counter() - t0, exceptions=[repr(e)])
            self.uploads[status] += 1
            run.abuse.append(Click(page, action, self.n, result))
            return
        await self._press_all(run, page, action)

    async def loop(self, run: Run, deadline: float, think: float) -> None:
        try:
            while time.perf_counter() < deadline:
                for page, action in self.rng.sample(ABUSE_ACTIONS, len(ABUSE_ACTIONS)):
                    if time.perf_counter() >= deadline:
                        return
                    await self.abuse(run, page, action)
                    await asyncio.sleep(think * self.rng.uniform(0.2, 0.5))
                    if self.session.disconnected:
                        await self.session.close()
                        self.shown = {}
                        run.reloads += 1
        finally:
            await self.session.close()


def job_counts(db, since_id: int) -> dict[str, Counter]:
    """The lab_jobs rows created after `since_id`, by kind: created, started, and by state."""
    rows = db.fetchall(
        "SELECT kind, state, started_at IS NOT NULL FROM lab_jobs WHERE id > %s", (since_id,)
    )
    out: dict[str, Counter] = {}
    for kind, state, started in rows:
        c = out.setdefault(kind, Counter())
        c["created"] += 1
        c["started"] += bool(started)
        c[state] += 1
    return out


def cancel_since(db, since_id: int, wait: float = 180.0) -> int:
    """Cancel the jobs the run queued that still run, and wait for them to end."""
    from lib.core import jobs

    live = db.fetchall(f"SELECT id FROM lab_jobs WHERE id > %s AND {jobs.LIVE}", (since_id,))
    for (job_id,) in live:
        jobs.cancel(db, job_id)
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline:
        row = db.fetchone(
            f"SELECT count(*) FROM lab_jobs WHERE id > %s AND {jobs.LIVE}", (since_id,)
        )
        if not row or not row[0]:
            break
        time.sleep(1)
    return len(live)


def database_bytes(db) -> int:
    row = db.fetchone("SELECT pg_database_size(current_database())")
    return int(row[0]) if row else 0


def server_per_minute(path: str | None) -> tuple[int, list[str]]:
    """The most pieces of heavy work the app let one session start in any 60 s of its clock,
    from the app's own record (lib/ui/room.RECORD_ENV), and what they were."""
    import json

    if not path or not Path(path).exists():
        return 0, ["(no record: the app wrote none)"]
    starts: dict[str, list[tuple[float, str]]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d["allowed"]:
            starts.setdefault(d["session"], []).append((d["at"], d["action"]))
    best: list[tuple[float, str]] = []
    for mine in starts.values():
        mine.sort()
        for i, (t, _) in enumerate(mine):
            window = [u for u in mine[i:] if u[0] - t < 60.0]
            if len(window) > len(best):
                best = window
    return len(best), [f"{a} (+{t - best[0][0]:.1f} s)" for t, a in best]


def max_per_minute(heavy: list[Heavy]) -> tuple[int, list[str]]:
    """The most heavy presses one session had accepted (nothing refused them) in any 60 s of
    the server's clock, and what they were. The client knows when it sent each press, not
    when the server counted it: a window counts only presses that were surely within 60 s of
    each other there (sent less than 60 s apart, less the longest any of them took)."""
    best: list[Heavy] = []
    for session in {h.session for h in heavy}:
        mine = sorted(
            (h for h in heavy if h.session == session and h.refusal is None), key=lambda h: h.at
        )
        for i, h in enumerate(mine):
            window = [u for u in mine[i:] if u.at - h.at < 60.0]
            slack = max(u.took for u in window)
            window = [u for u in window if u.at - h.at < 60.0 - slack]
            if len(window) > len(best):
                best = window
    start = best[0].at if best else 0.0
    return len(best), [f"{h.label} (+{h.at - start:.1f} s, took {h.took:.1f} s)" for h in best]


async def abuse_run(url: str, server: Server, args: argparse.Namespace, pool: list[str]) -> dict:
    """--sessions attendees for --duration: ABUSERS of them abuse, the rest click as the room
    scenario does. The figures, as a dict for `abuse_report`."""
    from lib.core import jobs
    from lib.core.database import open_database

    db = open_database(os.environ.get("DATABASE_URL") or None)
    jobs.ensure_table(db)
    row = db.fetchone("SELECT coalesce(max(id), 0) FROM lab_jobs")
    since = int(row[0]) if row else 0
    disk_before = database_bytes(db)
    run = Run("abuse", args.sessions, args.think, args.duration)
    rng = random.Random(args.seed + 99)
    upload = bomb(seed=args.seed)
    attendees: list[Attendee] = []
    for i in range(args.sessions):
        kw = dict(steps=ROOM_STEPS, pool=pool)
        if i < args.abusers:
            attendees.append(
                Abuser(i, url, args.timeout, random.Random(rng.random()), upload=upload, **kw)
            )
        else:
            attendees.append(Attendee(i, url, args.timeout, random.Random(rng.random()), **kw))
    run.start = server.usage()
    t0 = time.perf_counter()
    deadline = t0 + run.duration

    async def staggered(i: int, a: Attendee) -> None:
        await asyncio.sleep(args.ramp * i / max(1, run.sessions))
        await a.loop(run, deadline, run.think)

    await asyncio.gather(*(staggered(i, a) for i, a in enumerate(attendees)))
    run.wall = time.perf_counter() - t0
    run.end = server.usage()
    counts = job_counts(db, since)
    disk_after = database_bytes(db)
    cancelled = cancel_since(db, since)
    disk_cleaned = database_bytes(db)
    db.close()
    abusers = [a for a in attendees if isinstance(a, Abuser)]
    alive = all(p.is_running() for p in server.procs)
    return {
        "run": run,
        "jobs": counts,
        "disk": (disk_before, disk_after, disk_cleaned),
        "cancelled": cancelled,
        "heavy": [h for a in abusers for h in a.heavy],
        "uploads": sum((a.uploads for a in abusers), Counter()),
        "alive": alive,
    }


def abuse_report(mode: str, figures: dict, p95_target: float, abusers: int) -> list[str]:
    """Print one abuse run's figures against its targets; the verdict lines, for the end."""
    run: Run = figures["run"]
    ABUSERS = abusers  # noqa: N806 (the printout's wording)
    print()
    print(
        f"== room abuse, {mode}: {run.sessions} attendees × {run.duration:.0f} s, {ABUSERS} of "
        f"them pressing every expensive button"
    )
    others = run.clicks
    done = [c.result.seconds for c in others if c.failure in (None, "exception")]
    errors = Counter(c.failure for c in others if c.failure)
    p50 = pct(done, 50) if done else float("inf")
    p95 = pct(done, 95) if done else float("inf")
    print(
        f"  the other {run.sessions - ABUSERS}: {len(others)} clicks, p50 {ms(p50)} ms, p95 "
        f"{ms(p95)} ms, max {ms(max(done)) if done else 'n/a'} ms, errors "
        + (", ".join(f"{k} {v}" for k, v in errors.items()) or "none")
    )
    for line in table(run):
        print("    " + line)
    slow = Counter((c.page, c.action) for c in run.abuse if c.result.seconds > 2.0)
    if slow:
        print(
            "  the abusers' requests over 2 s: "
            + ", ".join(f"{p} / {a} {k}" for (p, a), k in slow.most_common(6))
        )
    abuse_errors = Counter(c.failure for c in run.abuse if c.failure and c.failure != "refused")
    crashes = Counter(
        m for c in run.abuse + others for m in c.result.exceptions if c.failure == "exception"
    )
    print(
        f"  the {ABUSERS} abusers: {len(run.abuse)} requests, errors "
        + (", ".join(f"{k} {v}" for k, v in abuse_errors.items()) or "none")
    )
    for m, k in crashes.most_common(3):
        print(f"    {k}× exception on the page: {m[:150]}")
    heavy = figures["heavy"]
    refused = Counter(h.refusal or "not refused" for h in heavy)
    print(
        f"  their heavy presses: {len(heavy)} — "
        + ", ".join(f"{k} {v}" for k, v in refused.most_common())
    )
    print(
        "  uploads of 20 MB (HTTP status of the PUT): "
        + (", ".join(f"{k} {v}" for k, v in sorted(figures["uploads"].items())) or "none")
    )
    jobs_ = figures["jobs"]
    shared = {k: v for k, v in jobs_.items() if k != "own_recall"}
    created = sum(v["created"] for v in jobs_.values())
    print(
        f"  jobs created during the run: {created}"
        + "".join(
            f"\n    {k}: {v['created']} created, {v['started']} started ("
            + ", ".join(f"{s} {n}" for s, n in v.items() if s not in ("created", "started"))
            + ")"
            for k, v in sorted(jobs_.items())
        )
    )
    print(f"  jobs still live at the end, cancelled by the benchmark: {figures['cancelled']}")
    before, after, cleaned = figures["disk"]
    print(
        f"  database size: before {before / MB:,.0f} MB, after {after / MB:,.0f} MB "
        f"({(after - before) / MB:+,.0f} MB), after the cancels {cleaned / MB:,.0f} MB"
    )
    if run.start and run.end:
        cores = (run.end.at - run.start.at) or 1
        busy = (run.end.machine_busy - run.start.machine_busy) / cores
        print(f"  machine: {busy:.2f} of {psutil.cpu_count()} cores busy on average")
    verdict = []

    def ok(flag: bool) -> str:
        return "meets" if flag else "MISSES"

    no_crash = figures["alive"] and not crashes and not errors.get("disconnected")
    if mode == "instructor mode":
        shared_started = sum(v["started"] for v in shared.values())
        own = jobs_.get("own_recall", Counter())
        verdict.append(
            f"{mode}: no shared job an attendee asked for starts: {shared_started} started — "
            f"{ok(shared_started == 0)} (own-table recall, anyone's within the limit: "
            f"{own['created']} created)"
        )
        verdict.append(
            f"{mode}: the other {run.sessions - ABUSERS}'s p95 under {p95_target:g} s: "
            f"{ms(p95)} ms — {ok(p95 < p95_target)}"
        )
    else:
        worst, labels = max_per_minute(heavy)
        huge = [h for h in heavy if h.label == "10⁹ rows"]
        capped = all(h.refusal == "refused (size, disk)" for h in huge)
        from lib.ui import room

        limit = room.per_minute()
        verdict.append(
            f"{mode}: 10⁹ rows refused every time: {sum(h.refusal is not None for h in huge)} of "
            f"{len(huge)} — {ok(capped)}"
        )
        server_worst, server_labels = server_per_minute(figures.get("heavy_log"))
        verdict.append(
            f"{mode}: heavy work the server let one session start in any 60 s (its own record, "
            f"{room.RECORD_ENV}): at most {server_worst} (limit {limit}) — "
            f"{ok(server_worst <= limit)}: " + "; ".join(server_labels)
        )
        verdict.append(
            f"{mode}: as the client saw it, presses with no refusal on the page in any minute: "
            f"at most {worst} (a press can also start nothing without saying so): "
            + "; ".join(labels)
        )
        verdict.append(f"{mode}: the other {run.sessions - ABUSERS}'s p95: {ms(p95)} ms (reported)")
    verdict.append(
        f"{mode}: nothing crashes (app alive, no exception on any page, no disconnect): "
        + ok(no_crash)
    )
    return verdict


async def abuse_main(args: argparse.Namespace) -> None:
    """Two runs of the room under abuse: instructor mode (a token set, nobody has it) and
    laptop mode (no token), each on a freshly started app."""
    pool = query_pool(args.pool, args.seed)
    verdicts_: list[str] = []
    token = os.environ.pop("LAB_INSTRUCTOR_TOKEN", None) or "bench-abuse-token"
    modes = [("instructor mode", {"LAB_INSTRUCTOR_TOKEN": token}), ("laptop mode", {})]
    wanted = {m.strip() for m in args.modes.split(",")}
    for mode, env in [(m, e) for m, e in modes if m.split()[0] in wanted]:
        log_path = Path(tempfile.mkdtemp(prefix="bench-abuse-")) / "streamlit.log"
        heavy_log = log_path.parent / "heavy-work.jsonl"  # the app's own record of the limit
        env = {**env, "LAB_HEAVY_WORK_LOG": str(heavy_log)}
        proc, url = start_app(args.ttl if args.ttl != 120 else None, log_path, env)
        try:
            server = Server([proc.pid], embedded_postgres_pid())
            print(f"\n{mode}: app {url} (log {log_path}); warming up…", flush=True)
            await warm_up(url, args.timeout)
            figures = await abuse_run(url, server, args, pool)
            figures["heavy_log"] = str(heavy_log)
            verdicts_ += abuse_report(mode, figures, args.p95_target, args.abusers)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("\n== room abuse against the targets (issue 21), on this machine, in this run")
    for line in verdicts_:
        print("  " + line)


# ---- warm-up, and the server's closed sessions -----------------------------------------


async def warm_up(url: str, timeout: float, wait: float = 900.0, rooms: bool = True) -> set[str]:
    """One session visits every page and waits until Recall at scale shows its
    measurement. Returns the error messages the pages show anyway (their lessons)."""
    t0 = time.perf_counter()
    alerts: set[str] = set()

    def check(result: RunResult, page: str) -> None:
        if result.failed:
            raise RuntimeError(f"warm-up: {page} failed: {result}")
        alerts.update(result.error_alerts)

    async def wait_for(page: str, shown: Callable[[str], bool], embed_key: str) -> None:
        """Rerun `page` until a text passes `shown`; a page that asks before embedding the
        passages its table needs (a fresh cache) is answered yes, once."""
        asked = False
        while not any(shown(t) for t in s.texts()):
            if time.perf_counter() - t0 > wait:
                raise TimeoutError(f"{page} showed no measurement in {wait:.0f} s")
            button = next((w for w in s.widgets() if (w.key or "").startswith(embed_key)), None)
            if button is not None and not asked:
                print(f"  {page}: {button.label} (its passages are not embedded yet)", flush=True)
                check(await s.set_widget(button.key, True), page)
                asked = True
                continue
            await asyncio.sleep(2)
            check(await s.rerun(), page)

    async with StreamlitSession(url, timeout=max(timeout, 300)) as s:
        for page, widget, value in [
            (ES, "es_text", "a small cat"),
            (DM, "dm_metric", 1),
        ]:
            for result in (await s.open(page), await s.set_widget(widget, value)):
                check(result, page)
        check(await s.open(RS), RS)
        await wait_for(RS, lambda t: "Recall@10" in t, "recall_embed_")
        check(await s.set_widget("recall_ef_search", 64), RS)
        check(await s.open(FS), FS)
        await wait_for(FS, lambda t: t.startswith("Queries short of LIMIT"), "filtered_embed_")
        for mode in (1, 2, 0):  # every mode's query set measured once, then shared
            check(await s.set_widget("filtered_mode", mode), FS)
        if rooms:  # a page whose size is not prepared says so, and is measured as it is
            for page in (IT, EV, HS, RE):  # one visit each, as every page above had
                check(await s.open(page), page)
    print(f"warm in {time.perf_counter() - t0:.1f} s: the figures below are of the steady state")
    return alerts


# ---- printing ------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    if math.isinf(seconds):
        return "n/a"
    return f"{1000 * seconds:,.0f}" if seconds >= 0.01 else f"{1000 * seconds:.1f}"


def mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / MB:,.0f} MB"


def cpu_per_click(clicks: list[Click]) -> float | None:
    """The server's mean CPU seconds per click, where each click's was measured."""
    measured = [c.app_cpu for c in clicks if c.app_cpu is not None and not c.failure]
    return statistics.mean(measured) if measured else None


def table(run: Run) -> list[str]:
    head = (
        f"{'page':<17} {'action':<23} {'count':>5} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'max ms':>8} {'errors':>6} {'KB/click':>8} {'CPU s/click':>11}"
    )
    lines = [head, "-" * len(head)]
    steps = [(p, a) for p, a in run.steps if run.page in (None, p)]
    groups = [(p, a, [c for c in run.clicks if (c.page, c.action) == (p, a)]) for p, a in steps]
    groups.append(("all", "", run.clicks))
    for page, action, clicks in groups:
        if page == "all":
            lines.append("-" * len(head))
        done = [c.result.seconds for c in clicks if c.failure in (None, "exception")]
        errors = sum(1 for c in clicks if c.failure)
        kb = statistics.mean(c.result.bytes_received for c in clicks) / 1024 if clicks else 0
        if done:
            figures = f"{ms(pct(done, 50)):>8} {ms(pct(done, 95)):>8} {ms(max(done)):>8}"
        else:
            figures = f"{'-':>8} {'-':>8} {'-':>8}"
        cpu = cpu_per_click(clicks)
        shown = f"{cpu:>11.3f}" if cpu is not None else f"{'-':>11}"
        lines.append(
            f"{page:<17} {action:<23} {len(clicks):>5} {figures} {errors:>6} {kb:>8.1f} {shown}"
        )
    return lines


def report(run: Run, usual_alerts: set[str]) -> None:
    print()
    print(
        f"== {run.name}: {run.sessions} session{'s' if run.sessions != 1 else ''} × "
        f"{run.duration:.0f} s, think {run.think:g} s ± 50%"
        + (f", on {run.page} alone" if run.page else ", every page")
        + (" (CPU per click measured one click at a time)" if run.sessions == 1 else "")
    )
    for line in table(run):
        print("  " + line)
    n = sum(1 for c in run.clicks if c.failure in (None, "exception"))
    if run.wall:
        print(f"  throughput: {n / run.wall:.2f} interactions/s ({n} answered in {run.wall:.1f} s)")
    failures = Counter(c.failure for c in run.clicks if c.failure)
    if failures:
        print("  errors: " + ", ".join(f"{k} {v}" for k, v in failures.most_common()))
        messages = Counter(m for c in run.clicks for m in c.result.exceptions)
        for m, k in messages.most_common(3):
            print(f"    {k}× {m[:150]}")
    else:
        print("  errors: none (no exception element, timeout or disconnect)")
    if run.reloads:
        print(f"  reloads after a timeout or disconnect: {run.reloads}")
    alerts = Counter(a for c in run.clicks for a in c.result.error_alerts if a not in usual_alerts)
    if alerts:
        print(f"  error messages the warm-up did not show (st.error): {sum(alerts.values())}")
        for m, k in alerts.most_common(3):
            print(f"    {k}× {m[:150]}")
    if run.start and run.end:
        cores = (run.end.at - run.start.at) or 1
        busy = (run.end.machine_busy - run.start.machine_busy) / cores
        parts = []
        if run.start.server is not None and run.end.server is not None:
            cpu = run.end.server - run.start.server
            per = f", {cpu / n:.3f} s per interaction" if n else ""
            parts.append(f"Streamlit {cpu:.1f} CPU-s ({cpu / cores:.2f} cores{per})")
        if run.start.postgres is not None and run.end.postgres is not None:
            cpu = run.end.postgres - run.start.postgres
            parts.append(f"PostgreSQL {cpu:.1f} CPU-s ({cpu / cores:.2f} cores)")
        client = run.end.client - run.start.client
        parts.append(f"this client {client:.1f} CPU-s ({client / cores:.2f} cores)")
        print("  cpu: " + "; ".join(parts))
        print(
            f"  machine: {busy:.2f} of {psutil.cpu_count()} cores busy on average "
            "(everything on it, other users included)"
        )
    if run.rss_before is not None:
        growth = (run.rss_peak or 0) - run.rss_before
        print(
            f"  server RSS: before {mb(run.rss_before)} ({mb(run.files_before)} of it mapped "
            f"from files), peak {mb(run.rss_peak)} (+{growth / MB:,.0f} MB, "
            f"{growth / MB / run.sessions:.1f} MB per session), 3 s after the sessions closed "
            f"{mb(run.rss_after_close)}"
        )


def verdicts(
    baseline: Run | None, main: Run, ttl: dict, stress: Run | None, processes: int = 1
) -> None:
    print()
    print("== memory and the mixed run's load (issue 8's targets), on this machine, in this run")

    def ok(flag: bool) -> str:
        return "meets" if flag else "MISSES"

    if baseline is not None and baseline.clicks:
        done = [c.result.seconds for c in baseline.clicks if not c.failure]
        p50 = pct(done, 50) if done else float("inf")
        print(
            f"  one session, p50 under {ms(BASELINE_P50_S)} ms per interaction: "
            f"{ms(p50)} ms — {ok(p50 < BASELINE_P50_S)}"
        )
    done = [c.result.seconds for c in main.clicks if c.failure in (None, "exception")]
    errors = sum(1 for c in main.clicks if c.failure)
    p95 = pct(done, 95) if done else float("inf")
    cond = (
        ""
        if (main.sessions, main.think) == (TARGET_SESSIONS, TARGET_THINK)
        else (
            f" (this run: {main.sessions} sessions at {main.think:g} s, not the target's "
            f"{TARGET_SESSIONS} at {TARGET_THINK:g} s)"
        )
    )
    print(
        f"  {main.sessions} sessions, p95 under {LOAD_P95_S:.1f} s and no errors: p95 "
        f"{ms(p95)} ms, {errors} error{'s' if errors != 1 else ''} — "
        f"{ok(p95 < LOAD_P95_S and errors == 0)}{cond}"
    )
    if main.rss_before is not None and main.rss_peak is not None:
        per = (main.rss_peak - main.rss_before) / MB / main.sessions
        after = ttl.get("after_reap")
        if after is None:
            returned = "its return not measured (--no-ttl-wait)"
            flag = per < MB_PER_SESSION
        else:
            left = after - main.rss_before
            what = ""
            files, files_before = ttl.get("files"), main.files_before
            if files is not None and files_before is not None:
                # Pages of mapped files (libraries, the model's weights) come and go with the
                # kernel's page cache; the process's own memory is the rest.
                left -= files - files_before
                what = " of the process's own memory (the RSS less pages of mapped files)"
            # What a process keeps (its caches, its heap) does not grow with the sessions it
            # served: the allowance is one session's budget per server process.
            growth = main.rss_peak - main.rss_before
            allowed = max(0.1 * growth, MB_PER_SESSION * MB * processes)
            flag = per < MB_PER_SESSION and left <= allowed
            each = f", {left / MB / processes:+,.1f} MB per process" if processes > 1 else ""
            returned = (
                f"{left / MB:+,.0f} MB{what} left after the TTL{each} (allowed: 10% of the "
                f"growth or {MB_PER_SESSION:.0f} MB per process, whichever is more)"
            )
        print(
            f"  under {MB_PER_SESSION:.0f} MB per session, returned after they close: "
            f"{per:.1f} MB per session, {returned} — {ok(flag)}"
            + (" (the growth only)" if after is None else "")
        )
    else:
        print("  memory per session: not measured (no server process known; pass --pid)")
    if stress is not None:
        done = [c.result.seconds for c in stress.clicks if c.failure in (None, "exception")]
        errs = sum(1 for c in stress.clicks if c.failure)
        if done:
            print(
                f"  stress, {stress.sessions} sessions at {stress.think:g} s think: p50 "
                f"{ms(pct(done, 50))} ms, p95 {ms(pct(done, 95))} ms, max {ms(max(done))} "
                f"ms, {len(done) / stress.wall:.2f} interactions/s, {errs} errors "
                "— reported"
            )


def page_verdicts(
    per_page: list[tuple[Run, Run | None]], mixed: tuple[Run | None, Run | None], p95_target: float
) -> None:
    """Page × action: app CPU per click and one session's p50 (from each page's one-session
    run), p95 and errors with --sessions on that page alone; then the mixed run."""
    print()
    print("== page × action, against the targets (issue 22), on this machine, in this run")
    head = (
        f"{'page':<17} {'action':<23} {'CPU s/click':>11} {'1 session p50':>13} "
        f"{'N alone p95':>11} {'N alone CPU':>11} {'errors':>6}  verdict"
    )
    print("  " + head)
    print("  " + "-" * len(head))

    def p(clicks: list[Click], q: float) -> float:
        done = [c.result.seconds for c in clicks if c.failure in (None, "exception")]
        return pct(done, q) if done else float("inf")

    # With N sessions a click's CPU cannot be told from its neighbours': "N alone CPU" is the
    # server's CPU over the page's whole N-session run per interaction, its actions together
    # (a measure of many clicks, where the one-session column is of a few, cold ones counted).
    rows: list[tuple[str, str, list[Click], list[Click], float | None]] = []
    for base, load in per_page:
        shared = None
        if load is not None and load.clicks and load.start and load.end:
            if load.start.server is not None and load.end.server is not None:
                shared = (load.end.server - load.start.server) / len(load.clicks)
        for page, action in base.steps:
            one = [c for c in base.clicks if (c.page, c.action) == (page, action)]
            many = [c for c in load.clicks if (c.page, c.action) == (page, action)] if load else []
            rows.append((page, action, one, many, shared))
    for page, action, one, many, shared in rows:
        cpu = cpu_per_click(one)
        p50 = p(one, 50)
        misses = []
        if cpu is None or cpu > CPU_PER_CLICK_S:
            misses.append("CPU")
        if p50 > BASELINE_P50_S:
            misses.append("p50")
        errors = sum(1 for c in one + many if c.failure)
        if many and (p(many, 95) >= p95_target or errors):
            misses.append("p95/errors")
        cpu_text = f"{cpu:>11.3f}" if cpu is not None else f"{'-':>11}"
        p95_text = f"{ms(p(many, 95)):>8} ms" if many else f"{'-':>11}"
        shared_text = f"{shared:>11.3f}" if shared is not None else f"{'-':>11}"
        print(
            f"  {page:<17} {action:<23} {cpu_text} {ms(p50):>10} ms {p95_text} {shared_text} "
            f"{errors:>6}  " + ("meets" if not misses else "MISSES " + ", ".join(misses))
        )
    print(
        f"  targets: app CPU per click ≤ {CPU_PER_CLICK_S:.2f} s; one session p50 ≤ "
        f"{ms(BASELINE_P50_S)} ms; N sessions p95 < {p95_target:g} s with no errors"
    )
    baseline, load = mixed
    if baseline is not None and baseline.clicks:
        print(
            f"  mixed, one session: p50 {ms(p(baseline.clicks, 50))} ms, "
            f"{cpu_per_click(baseline.clicks) or float('nan'):.3f} CPU-s per click — "
            + ("meets" if p(baseline.clicks, 50) <= BASELINE_P50_S else "MISSES")
        )
    if load is not None and load.clicks:
        errors = sum(1 for c in load.clicks if c.failure)
        flag = p(load.clicks, 95) < p95_target and errors == 0
        cpu = None
        if (
            load.start
            and load.end
            and load.start.server is not None
            and load.end.server is not None
        ):
            cpu = (load.end.server - load.start.server) / len(load.clicks)
        per = f", {cpu:.3f} CPU-s per interaction" if cpu is not None else ""
        print(
            f"  mixed, {load.sessions} sessions: p95 {ms(p(load.clicks, 95))} ms, {errors} "
            f"error{'s' if errors != 1 else ''}{per} — " + ("meets" if flag else "MISSES")
        )


# ---- the app -------------------------------------------------------------------------


def start_app(
    ttl: int | None, log_path: Path, extra_env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """`streamlit run serve.py` as `make run` starts it, on a free port."""
    port = free_port()
    env = {
        **os.environ,
        **(extra_env or {}),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        **memory.SERVER_ENV,
    }
    args = [sys.executable, "-m", "streamlit", "run", "serve.py"]
    args += ["--server.port", str(port)]
    if ttl is not None:
        args += ["--server.disconnectedSessionTTL", str(ttl)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, timeout=120)
    return proc, url


def listening_pid(url: str) -> int | None:
    """The local process listening on the URL's port, if it is a Streamlit server."""
    parts = urlsplit(url)
    if parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            cmd = " ".join(psutil.Process(c.pid).cmdline())
            return c.pid if "streamlit" in cmd else None
    return None


def embedded_postgres_pid() -> int | None:
    """The embedded server's postmaster (the app's .pgdata), when DATABASE_URL is not set."""
    if os.environ.get("DATABASE_URL"):
        return None
    pidfile = PROJECT_DIR / ".pgdata" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
        return pid if psutil.pid_exists(pid) else None
    except (OSError, ValueError, IndexError):
        return None


async def wait_out_ttl(server: Server, ttl: int, settle: int) -> dict:
    """RSS once Streamlit's TTL for closed sessions has passed and the app has given their
    memory back (lib/ui/st_internals.py drops the expired sessions, lib/core/memory.py collects)."""
    print(
        f"  … waiting {ttl + settle} s: server.disconnectedSessionTTL ({ttl} s), then "
        f"{settle} s for the app to give the memory back",
        flush=True,
    )
    await asyncio.sleep(max(0.0, ttl + settle - 3))  # 3 s already passed after the close
    after, files = server.rss(), server.file_rss()
    print(f"  server RSS after the TTL: {mb(after)} ({mb(files)} of it mapped from files)")
    return {"after_reap": after, "files": files}


async def main_async(args: argparse.Namespace) -> None:
    proc = None
    log_path = Path(tempfile.mkdtemp(prefix="bench-load-")) / "streamlit.log"
    try:
        if args.url:
            url = args.url.rstrip("/")
            pids = args.pid or ([p] if (p := listening_pid(url)) else [])
            pg_pid = args.pg_pid
            started = "given"
        else:
            ttl_flag = args.ttl if args.ttl != 120 else None
            proc, url = start_app(ttl_flag, log_path)
            pids, pg_pid = [proc.pid], None
            started = "started by this benchmark (log: " + str(log_path) + ")"
        server = Server(pids, pg_pid)
        print(f"app: {url}, {started}")
        print(
            "server processes measured: "
            + (", ".join(f"pid {p}" for p in pids) if pids else "none (pass --pid)")
        )
        # Behind a proxy, sessions open together land on different servers: one each.
        warm = args.warm_sessions or max(1, len(pids))
        print(
            f"warming up ({warm} session{'s' if warm > 1 else ''} at once, every page, "
            "the 500-row table measured)…",
            flush=True,
        )
        classic = args.scenario == "classic"
        steps = CLASSIC_STEPS if classic else ROOM_STEPS
        if args.pages:
            wanted = [p.strip() for p in args.pages.split(",")]
            unknown = [p for p in wanted if p not in PAGES]
            if unknown:
                raise SystemExit(f"no page {unknown[0]!r}; the pages are {PAGES}")
            steps = [(p, a) for p, a in steps if p in wanted]
        pool = QUERIES if classic else query_pool(args.pool, args.seed)
        print(
            f"scenario: {args.scenario} ({len(pool):,} typed queries"
            + ("" if classic else ", sliders anywhere in their range")
            + ")"
        )
        seen = await asyncio.gather(
            *(warm_up(url, args.timeout, rooms=not classic) for _ in range(warm))
        )
        usual = set().union(*seen)
        if server.pg is None and not args.url:
            pg = embedded_postgres_pid()
            server.pg = psutil.Process(pg) if pg else None
        sessions = dict(ramp=args.ramp, timeout=args.timeout, pool=pool)

        per_page: list[tuple[Run, Run | None]] = []
        if args.per_page:
            for i, page in enumerate(dict.fromkeys(p for p, _ in steps)):
                mine = [(p, a) for p, a in steps if p == page]
                one = Run(f"{page}, one session", 1, args.baseline_think, args.page_baseline)
                one.steps, one.page = mine, page
                await run_sessions(url, server, one, **sessions, seed=args.seed + 10 + i)
                report(one, usual)
                many = None
                if args.page_duration > 0:
                    many = Run(f"{page} alone", args.sessions, args.think, args.page_duration)
                    many.steps, many.page = mine, page
                    await run_sessions(url, server, many, **sessions, seed=args.seed + 20 + i)
                    report(many, usual)
                per_page.append((one, many))

        baseline = main = None
        ttl_figures = {}
        stress = None
        if args.mixed:
            if args.baseline > 0:
                baseline = Run("baseline, every page", 1, args.baseline_think, args.baseline)
                baseline.steps = steps
                await run_sessions(url, server, baseline, **sessions, seed=args.seed)
                report(baseline, usual)
            main = Run("load, every page", args.sessions, args.think, args.duration)
            main.steps = steps
            await run_sessions(url, server, main, **sessions, seed=args.seed + 1)
            report(main, usual)
            if not args.no_ttl_wait and server.procs:
                ttl_figures = await wait_out_ttl(server, args.ttl, args.settle)
            if args.stress:
                stress = Run("stress", args.sessions, args.stress_think, args.duration)
                stress.steps = steps
                await run_sessions(url, server, stress, **sessions, seed=args.seed + 2)
                report(stress, usual)
            verdicts(baseline, main, ttl_figures, stress, max(1, len(server.procs)))
        if per_page or main is not None:
            page_verdicts(per_page, (baseline, main), args.p95_target)
        print(
            "\nThe machine is shared: other users' work competes for its cores, so the figures "
            "are noisy; compare runs by the machine load printed with each."
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a running app or a proxy in front of several")
    ap.add_argument("--pid", type=int, action="append", help="a server process to measure (repeat)")
    ap.add_argument("--pg-pid", type=int, help="the PostgreSQL postmaster to measure, with --url")
    ap.add_argument("--sessions", type=int, default=TARGET_SESSIONS)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of each run")
    ap.add_argument("--think", type=float, default=TARGET_THINK, help="mean think time, s")
    ap.add_argument("--stress", action="store_true", help="add a run at --stress-think")
    ap.add_argument("--stress-think", type=float, default=1.0)
    ap.add_argument("--baseline", type=float, default=30.0, help="seconds of one session (0: none)")
    ap.add_argument("--baseline-think", type=float, default=1.0)
    ap.add_argument("--ramp", type=float, default=5.0, help="seconds over which sessions start")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a click fails")
    ap.add_argument(
        "--ttl",
        type=int,
        default=120,
        help="server.disconnectedSessionTTL: the app is started with it; with --url, the "
        "server's own setting (how long to wait)",
    )
    ap.add_argument(
        "--settle",
        type=int,
        default=20,
        help="seconds waited after the TTL for the app to give the memory back",
    )
    ap.add_argument("--no-ttl-wait", action="store_true", help="skip waiting out the TTL")
    ap.add_argument(
        "--warm-sessions",
        type=int,
        help="sessions that warm the app at once (default: one per --pid, so each server "
        "behind a proxy gets one)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--scenario",
        choices=["room", "classic"],
        default="room",
        help="room: every page, sliders anywhere in their range, queries from the corpus; "
        "classic: issue 8's loop (4 pages, 7 ef_search values, 18 queries), to compare layouts",
    )
    ap.add_argument("--pages", help="only these pages, comma-separated (e.g. 'Evals,Index tuning')")
    ap.add_argument(
        "--per-page",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a run per page: one session (CPU per click per action), then --sessions alone",
    )
    ap.add_argument("--mixed", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--page-baseline", type=float, default=30.0, help="seconds, one session")
    ap.add_argument(
        "--page-duration",
        type=float,
        default=60.0,
        help="seconds of --sessions on a page (0: none)",
    )
    ap.add_argument("--pool", type=int, default=POOL_SIZE, help="typed queries drawn from")
    ap.add_argument(
        "--p95-target",
        type=float,
        default=LOAD_P95_S,
        help="seconds: 1.0 for one process (make run), 0.3 through make workshop",
    )
    ap.add_argument(
        "--abuse",
        action="store_true",
        help=f"the room under abuse instead: {ABUSERS} of --sessions press every expensive "
        "button, twice (instructor mode, then laptop mode)",
    )
    ap.add_argument(
        "--abusers", type=int, default=ABUSERS, help="with --abuse: how many (0: a control run)"
    )
    ap.add_argument(
        "--modes",
        default="instructor,laptop",
        help="with --abuse: which runs (instructor, laptop, or both, comma-separated)",
    )
    args = ap.parse_args()
    asyncio.run(abuse_main(args) if args.abuse else main_async(args))


if __name__ == "__main__":
    main()
