"""The generator, checked: real rows against generated rows of the same size, on the measures
the ANN literature uses for hardness, and on HNSW recall at low `ef_search`.

    .venv/bin/python -m lib.lessons.recall.generator_check      # 50,000 rows (make prepare runs it)
    .venv/bin/python -m lib.lessons.recall.generator_check --sizes 5000,50000,300000

For a size n the real side is the recall table of n rows (real passages up to n_real); the
generated side is a table of n rows drawn from the generator alone, `recall_gen_n{n}_d{d}`,
with the same HNSW index. Against each, with the held-out real queries: the local intrinsic
dimensionality and relative contrast of every query (lib/lessons/recall/hardness.py), the
median similarity of its nearest row, and recall@10 at ef_search 10, 20 and 40 from the
harness. Results are stored in `recall_generator_checks`, keyed by the dataset's fingerprint.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.database import Database
from lib.dataset.builds import build_settings, copy_table, parallel_workers
from lib.dataset.index_specs import IndexSpec, index_statement
from lib.dataset.passages import Dataset
from lib.dataset.sizing import memory_available, plan_size
from lib.dataset.synthetic import rows as generated_rows
from lib.harness import recall
from lib.lessons.recall.hardness import hardness

LOW_EF = (10, 20, 40)
DEFAULT_SIZES = (50_000,)

DDL = """CREATE TABLE IF NOT EXISTS recall_generator_checks (
    fingerprint text NOT NULL,
    n integer NOT NULL,
    measured_at timestamptz NOT NULL DEFAULT now(),
    seconds double precision NOT NULL,
    real jsonb NOT NULL,
    generated jsonb NOT NULL,
    PRIMARY KEY (fingerprint, n)
)"""


@dataclass(frozen=True)
class Side:
    """One set of rows, measured."""

    table: str
    index: str
    rows: int
    real_rows: int
    lid_median: float
    lid_p90: float
    rc_median: float
    rc_p10: float
    nearest_similarity_median: float
    recall: dict[str, float]  # ef_search -> mean recall@10


@dataclass(frozen=True)
class Check:
    n: int
    measured_at: datetime
    seconds: float
    real: Side
    generated: Side


def ensure_table(db: Database) -> None:
    db.ensure("recall_generator_checks", DDL)


def generated_table(n: int, dimension: int) -> str:
    return f"recall_gen_n{n}_d{dimension}"


def load_generated(db: Database, ds: Dataset, n: int, spec: IndexSpec | None = None) -> str:
    """Table `recall_gen_n{n}_d{d}`: n rows of the generator alone (the rows that follow the
    real ones in every larger table), indexed like the recall tables, in one transaction;
    kept while the dataset's fingerprint (in the table's comment) is the same."""
    spec = spec or IndexSpec()
    table = generated_table(n, ds.dimension)
    ident = sql.Identifier(table)
    plan = plan_size(n, ds.dimension, m=spec.m, memory=memory_available())
    settings = {
        **build_settings(),
        "maintenance_work_mem": f"{plan.maintenance_work_mem_mb}MB",
        "max_parallel_maintenance_workers": parallel_workers(),
    }
    with db.transaction(settings) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        row = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (table,)
        ).fetchone()
        stamp = f"{ds.fingerprint()} {spec.suffix()}"
        if row and row[0] == stamp:
            return table
        copy_table(conn, table, ds.dimension, generated(ds, n))
        conn.execute(index_statement(table, spec).text)
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(stamp)))
    return table


def generated(ds: Dataset, n: int):
    """`n` rows of the generator alone, in blocks: those that follow the real rows in every
    table larger than the corpus."""
    nothing_real = np.zeros((0, ds.dimension), np.float32)
    return generated_rows(nothing_real, ds.generator, n, seed=ds.seed)


def measure_side(
    db: Database, ds: Dataset, table: str, spec: IndexSpec, n: int, blocks, real_rows: int
) -> Side:
    h = hardness(ds.queries, blocks)
    target = recall.generated_target(table)
    truth = recall.ground_truth(db, target, ds.queries)
    by_ef = {}
    for ef in LOW_EF:
        report = recall.measure(
            db, target, ds.queries, knobs=recall.knobs_for("hnsw", ef_search=ef), truth=truth
        )
        by_ef[str(ef)] = report.recall["mean"]
    return Side(
        table=table,
        index=spec.label(),
        rows=n,
        real_rows=real_rows,
        lid_median=h.lid_median,
        lid_p90=h.lid_p90,
        rc_median=h.rc_median,
        rc_p10=h.rc_p10,
        nearest_similarity_median=h.nearest_similarity_median,
        recall=by_ef,
    )


def run_check(db: Database, ds: Dataset, n: int) -> Check:
    """Measure both sides at size `n` (building what is missing) and store the result.

    The real side is the recall table of `n` rows as it is (built with the default HNSW index
    if missing); the generated table gets the same index."""
    from lib.dataset.builds import prepare
    from lib.dataset.recall_tables import table_status

    t0 = time.perf_counter()
    status = table_status(db, ds, n)
    if not status.ready():
        prepare(db, ds, n, status.index.spec() if status.index else None)
        status = table_status(db, ds, n)
    spec = status.index.spec()
    if spec.kind != "hnsw":
        raise ValueError(
            f"the {n:,}-row table has an {spec.label()} index now; the check compares HNSW "
            "indexes at low ef_search (rebuild it with HNSW on the Recall page)"
        )
    real = measure_side(db, ds, status.table, spec, n, ds.rows(n), ds.real_rows(n))
    gen_table = load_generated(db, ds, n, spec)
    gen_side = measure_side(db, ds, gen_table, spec, n, generated(ds, n), 0)
    seconds = time.perf_counter() - t0
    ensure_table(db)
    row = db.fetchone(
        "INSERT INTO recall_generator_checks (fingerprint, n, seconds, real, generated)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (fingerprint, n) DO UPDATE SET"
        " measured_at = now(), seconds = EXCLUDED.seconds, real = EXCLUDED.real,"
        " generated = EXCLUDED.generated RETURNING measured_at",
        (ds.fingerprint(), n, seconds, Jsonb(asdict(real)), Jsonb(asdict(gen_side))),
    )
    return Check(n, row[0], seconds, real, gen_side)


def stored(db: Database, ds: Dataset) -> list[Check]:
    """Every check stored for this dataset, smallest size first."""
    ensure_table(db)
    rows = db.fetchall(
        "SELECT n, measured_at, seconds, real, generated FROM recall_generator_checks"
        " WHERE fingerprint = %s ORDER BY n",
        (ds.fingerprint(),),
    )
    return [Check(n, at, s, Side(**r), Side(**g)) for n, at, s, r, g in rows]


def lines(checks: list[Check]) -> list[str]:
    """The comparison as a plain-text table."""
    efs = " ".join(f"{'ef ' + str(e):>7}" for e in LOW_EF)
    out = [f"{'rows':>9}  {'side':<22} {'LID p50':>7} {'p90':>6} {'RC p50':>7} {'p10':>6} "
           f"{'NN sim':>6} {efs}"]  # fmt: skip
    for c in checks:
        for label, side in (("real", c.real), ("generated", c.generated)):
            if label == "real" and side.real_rows < side.rows:
                label = f"real ({side.real_rows:,} of them)"
            recalls = " ".join(f"{side.recall[str(e)]:>7.3f}" for e in LOW_EF)
            out.append(
                f"{c.n:>9,}  {label:<22} {side.lid_median:>7.1f} {side.lid_p90:>6.1f} "
                f"{side.rc_median:>7.3f} {side.rc_p10:>6.3f} "
                f"{side.nearest_similarity_median:>6.3f} {recalls}"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    from lib.core.database import open_database
    from lib.dataset.passages import load_dataset

    ap = argparse.ArgumentParser(
        prog="python -m lib.lessons.recall.generator_check", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES))
    args = ap.parse_args(argv)
    db = open_database()
    ds = load_dataset()
    checks = []
    for n in (int(s.replace("_", "").replace(",", "")) for s in args.sizes.split(",") if s):
        print(f"Checking {n:,} rows: real against generated…", flush=True)
        checks.append(run_check(db, ds, n))
    print("\n".join(lines(checks)))
    print(
        f"\nLID: local intrinsic dimensionality (k = 100), RC: relative contrast (k = 10), of "
        f"the {len(ds.queries)} held-out real queries; NN sim: cosine similarity of each "
        "query's nearest row; ef N: recall@10 of HNSW (m = 16, ef_construction = 64) at "
        "hnsw.ef_search = N. Higher LID, lower RC and lower recall mean harder rows."
    )
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
