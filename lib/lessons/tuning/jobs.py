"""The Index tuning page's heavy work, as two kinds of job in the one queue
(lib/core/jobs.py): building a configuration (config_tables.py) and sweeping one
(frontier.py).

A job's key is (size, configuration, parameters), so thirty people asking for the same build
or the same sweep get one. It runs in its size's lane, so a configuration's build never
shares the cores with a recall-table build, and a sweep's latencies are never measured
during one. Progress is read from the job's row and, while an index builds, from the
server's own `pg_stat_progress_create_index`, whichever process runs it.
"""

from __future__ import annotations

from lib.core import jobs
from lib.core.database import Database
from lib.core.jobs import Progress
from lib.dataset import builds, config_tables, sizing
from lib.dataset.index_configs import DEFAULT_OVERSAMPLE, Config, copy_table
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import table_status
from lib.harness import truths
from lib.harness.recall import HarnessError, K
from lib.harness.size_jobs import lane_of
from lib.lessons.tuning import frontier

BUILD, SWEEP = "tuning_build", "tuning_sweep"


class Job(jobs.View):
    """A tuning job: the queue's fields, its size, configuration and parameters."""

    @property
    def kind(self) -> str:
        """'build' or 'sweep'."""
        return self.job.kind.removeprefix("tuning_")

    @property
    def config(self) -> Config:
        return Config.from_json(self.job.key["config"])

    @property
    def result(self) -> int | None:
        return self.job.fact("result")


def _view(job: jobs.Job | None) -> Job | None:
    return Job(job) if job is not None else None


def _key(n: int, config: Config, params: dict) -> dict:
    return {"n": n, "config": config.to_json(), "params": params}


def request_build(db: Database, ds: Dataset, n: int, config: Config) -> Job:
    """The live job building `config` for size `n`, or a new one in the queue."""
    config = config.resolved(n)
    config.check()
    table = copy_table(n, ds.dimension, config)
    key = _key(n, config, {})
    what = f"{config.label()} for {n:,} rows"
    facts = sizing.check_queued(db, n, ds.dimension, kind=BUILD, key=key, what=what)
    return Job(jobs.request(db, BUILD, key, lane_of(n), table, facts))


def sweep_params(config: Config, oversample: int | None = None) -> dict:
    """A sweep's parameters as a job keys them: the knob's values, k, the oversampling."""
    params: dict = {"values": list(config.sweep_values()), "k": K}
    if config.kind == "binary":
        params["oversample"] = int(oversample or DEFAULT_OVERSAMPLE)
    return params


def request_sweep(
    db: Database, ds: Dataset, n: int, config: Config, oversample: int | None = None
) -> Job:
    """The live job sweeping `config` for size `n`, or a new one in the queue."""
    config = config.resolved(n)
    config.check()
    key = _key(n, config, sweep_params(config, oversample))
    what = f"Sweeping {config.label()} for {n:,} rows"
    sizing.check_queued(db, n, ds.dimension, kind=SWEEP, key=key, what=what, disk=False)
    return Job(jobs.request(db, SWEEP, key, lane_of(n), copy_table(n, ds.dimension, config)))


def get(db: Database, job_id: int) -> Job | None:
    return _view(jobs.get(db, job_id))


def live(db: Database, n: int) -> list[Job]:
    """Every queued or running job for size `n`, oldest first."""
    found = [j for kind in (BUILD, SWEEP) for j in jobs.find(db, kind, {"n": n}, live=True)]
    return [Job(j) for j in sorted(found, key=lambda j: j.id)]


def last_failed(db: Database, n: int, kind: str, config: Config) -> Job | None:
    """The newest job of this kind ('build' or 'sweep') and configuration, if it failed."""
    contains = {"n": n, "config": config.resolved(n).to_json()}
    found = jobs.newest(db, f"tuning_{kind}", contains)
    return Job(found) if found is not None and found.state == "failed" else None


def wait(db: Database, job: Job, timeout: float = 600) -> Job:
    return Job(jobs.wait(db, job.job, timeout))


def progress(db: Database, job: Job) -> Progress:
    """Where `job` stands, read now."""
    label = job.config.label()
    if (before := jobs.waiting(db, job, label)) is not None:
        return before
    if job.state == "copying":
        return Progress(
            None, f"Copying the {job.n:,} rows into {job.table_name} ({job.elapsed():.0f} s)…"
        )
    if job.state == "indexing":
        what = f"the {label} index"
        return builds.index_step(db, job.table_name, what, job.n, job.elapsed())
    if job.state == "sweeping":
        knob = frontier.knob_label(job.config.knob)
        return jobs.counted(
            job, f"Sweeping {knob} for {label}: {job.done} of {job.total} values measured."
        )
    return jobs.ended(job, label, f"{label}: done.") or Progress(None, job.state)


# ---------------------------------------------------------------------------------------
# Running jobs


def run_sweep(
    db: Database,
    ds: Dataset,
    n: int,
    config: Config,
    *,
    oversample: int | None = None,
    values: list[int] | None = None,
    k: int = K,
    queries: int | None = None,
    runs: int = 1,
    source: str = "app",
    progress=None,
) -> frontier.Sweep:
    """Sweep `config` (built) on size `n` against the stored truth, and store the sweep."""
    config = config.resolved(n)
    status = table_status(db, ds, n)
    truth = truths.of_table(db, ds, status, k)
    if truth is None:
        raise HarnessError(f"{status.table} has no stored ground truth yet")
    (built,) = config_tables.statuses(db, ds, n, status, [config])
    if not built.built:
        raise HarnessError(f"{config.label()} is not built for {n:,} rows")
    shape = built.place.query(int(oversample or DEFAULT_OVERSAMPLE))
    qs = ds.queries[: queries or len(ds.queries)]
    result = frontier.sweep(
        db, shape, qs, truth, config=config, index=built.place.index, values=values, k=k,
        runs=runs, progress=progress,
    )  # fmt: skip
    result.n = n
    result.index_built_at = built.built_at
    result.source_loaded_at = status.loaded_at
    result.source = source
    frontier.store(db, result)
    return result


def run_build(ctx: jobs.Context) -> None:
    job = Job(ctx.job)
    config_tables.build_config(
        ctx.db, ctx.env, job.n, job.config, on_backend=ctx.backend, on_phase=ctx.step
    )


def run_swept(ctx: jobs.Context) -> None:
    job = Job(ctx.job)
    params = job.params
    values = params.get("values")
    ctx.step("sweeping", total=len(values or job.config.sweep_values()), done=0)
    result = run_sweep(
        ctx.db, ctx.env, job.n, job.config, oversample=params.get("oversample"), values=values,
        k=params.get("k", K), progress=lambda done, total: ctx.count(done),
    )  # fmt: skip
    ctx.record(result=result.id)


jobs.register(BUILD, run_build)
jobs.register(SWEEP, run_swept)
