"""A page built on a stored evals report (lib/harness/reports.py): the sizes it can offer, and
the report of the chosen one, or else its job's progress or the button that starts it."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from lib.core import jobs as queue
from lib.core.database import Database
from lib.core.view import PlainFigure
from lib.dataset.passages import Dataset
from lib.harness import size_jobs
from lib.harness.reports import MIN_QUERIES, Stored, Suite, stored_by_id
from lib.ui import connection, derived, report_view, resources, room, text

PREPARE_N = 100_000

# A page's stored reports. A stored report never changes: it is read once by its id and every
# session is handed that object (never a copy), so what a page draws from it is drawn once too
# (lib/ui/derived.py). Only which report is the newest is asked again, at most every 15 s.
_SUITES: dict[str, Suite] = {}


@st.cache_data(max_entries=32, ttl=15, show_spinner=False)
def newest_id(suite: str, n: int) -> int | None:
    return _SUITES[suite].newest_id(connection.database(), resources.recall_dataset(), n)


@st.cache_resource(max_entries=16, show_spinner=False)
def stored_report(report_id: int) -> Stored | None:
    return stored_by_id(connection.database(), report_id)


class StoredOf:
    """`stored(n)`: the suite's newest stored report of size `n` (None: none yet);
    `stored.clear()` asks again at the next call."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        _SUITES[suite.name] = suite

    def __call__(self, n: int) -> Stored | None:
        report_id = newest_id(self.suite.name, n)
        return None if report_id is None else stored_report(report_id)

    def clear(self) -> None:
        newest_id.clear()  # every suite and size: each is asked again once, cheaply


def pick_size(
    db: Database,
    ds: Dataset,
    evaluable: Callable[[int], int],
    stored: Callable[[int], Stored | None],
    key: str,
) -> int:
    """The size the page reports on: a slider over the prepared sizes that hold the answers
    of enough test queries (or have a stored report). With none, the page says why and offers
    to prepare 100,000 rows, and stops."""
    ready = [
        n for n in resources.ready_sizes() if evaluable(n) >= MIN_QUERIES or stored(n) is not None
    ]
    if not ready:
        n = PREPARE_N
        st.info(
            "The recall tables hold a sample of every manual, so only tables of 50,000 rows or "
            "more hold the answers of enough test queries. No such size is prepared here yet: "
            f"`make prepare` builds them, or prepare {n:,} rows now (it embeds the passages it "
            "needs first; everyone shares the build).",
            icon=":material/hourglass_empty:",
        )
        live = size_jobs.live(db, n)
        if live is not None:
            p = size_jobs.progress(db, live)
            st.progress(p.fraction or 0.0, text=p.text)
        elif st.button(f"Prepare {n:,} rows", icon=":material/build:") and room.may(
            f"Preparing {n:,} rows"
        ):
            with room.refusals():
                size_jobs.request(db, ds, n)
                st.rerun()
        st.stop()
    default = PREPARE_N if PREPARE_N in ready else ready[-1]
    if st.session_state.get(key) not in ready:
        st.session_state[key] = default
    return st.select_slider(
        "Rows in the table", options=ready, key=key, format_func=lambda v: f"{v:,}",
        help="Only sizes prepared on this server whose tables hold the answers of enough test "
        "queries.",
    )  # fmt: skip


def report_or_stop(
    db: Database,
    suite: Suite,
    n: int,
    stored: Callable[[int], Stored | None],
    evaluable: Callable[[int], int],
    runs: str,
) -> Stored:
    """Size `n`'s stored report; else its job's progress, or what a run does (`runs`, in
    words) and the button that starts it, and the page stops."""
    found = stored(n)
    if found is not None:
        return found

    @connection.progress_fragment(run_every=1.0)
    def job_progress(job_id: int) -> None:
        job = suite.get(db, job_id)  # type: ignore[attr-defined]
        if job is None or not job.running:
            stored.clear()  # type: ignore[attr-defined]
            st.rerun(scope="app")
        p = suite.progress(db, job)
        st.progress(p.fraction or 0.0, text=p.text)
        st.caption(
            "This goes on if you leave the page; everyone asking for this size shares it "
            f"(job {job.id})."
        )
        if room.instructor():
            st.button(
                "Cancel", key=f"{suite.name}_cancel_{job_id}", on_click=queue.cancel,
                args=(db, job_id), help="Stops it for everyone.",
            )  # fmt: skip

    live = suite.live(db, n)  # type: ignore[attr-defined]
    if live is not None:
        job_progress(live.id)
        st.stop()
    failed = suite.last(db, n)  # type: ignore[attr-defined]
    if failed is not None and failed.state == "failed":
        st.error(f"The last run failed: {text.plain(failed.error or '')}", icon=":material/error:")
    st.info(
        f"Nothing stored for {n:,} rows yet. A run sends its {evaluable(n):,} test queries "
        f"through {runs}, once; then everyone reads the stored result.",
        icon=":material/pending:",
    )
    if st.button(f"Run them on {n:,} rows", icon=":material/play_arrow:") and room.may(
        f"Running {suite.what} on {n:,} rows"
    ):
        suite.request(db, n)
        st.rerun()
    st.stop()
    raise AssertionError  # st.stop() does not return


def figure_of(report: dict, names: dict | None = None) -> PlainFigure:
    """report_view.figure of `report` as a plain spec, built once per report object (it was
    a go.Figure built at every page load, about 30 ms of CPU)."""
    key = ("bars", tuple(sorted((names or {}).items())))
    return derived.of(
        report, key, lambda: PlainFigure(report_view.figure(report, names=names).to_dict())
    )


def metrics_and_figure(report: dict, caption: str, names: dict | None = None) -> None:
    """The report's systems × metrics with intervals beside nDCG@10's bars (`names`: short
    names of the systems for the bars)."""
    left, right = st.columns([3, 2])
    with left:
        frame = derived.table_of(report, "metrics", lambda: report_view.metrics_frame(report))
        st.dataframe(frame, width="stretch")
        st.caption(caption)
    with right:
        st.plotly_chart(figure_of(report, names), width="stretch", config={"displayModeBar": False})
