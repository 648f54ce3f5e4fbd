"""The Filtered search page's tables: a recall table's rows (lib/dataset/recall_tables.py) with
filter columns of known selectivity, `filtered_n{N}_d{d}`, built once beside the recall table
and kept, with a B-tree index on each filter column, an HNSW index, and a partial HNSW index
`WHERE category = 5`.

- `category` puts each row, in an order shuffled by a hash of its id (so it has nothing to do
  with the vector), into 1 (50% of the rows), 2 (10%), 3 (1%), 4 (0.1%), 5 (1%: the twin of 3,
  with the partial index) or 0 (the rest), each share an exact count of rows.
- `chapter` is the manual and chapter of a real row's passage
  (`lib.core.chunks.Chunks.doc_chapters`), NULL for a generated row: a filter correlated with
  the vectors, where `category` is not.

A build runs in one transaction under an advisory lock on the table's name, and is recorded
in `filtered_tables` with the dataset's fingerprint (and each category's count): a table built
from other rows is rebuilt.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.database import Database
from lib.core.psql import Statement, ident
from lib.dataset import builds, recall_tables, sizing
from lib.dataset.index_specs import IndexSpec, index_statement
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import table_name as recall_table

SIZES = (5_000, 20_000, 100_000, 500_000)
DEFAULT_SIZE = 20_000
FILTER_COLUMNS = ("category", "chapter")


@dataclass(frozen=True)
class Category:
    value: int
    share: float  # of the table's rows
    label: str
    partial: bool = False  # has a partial HNSW index of its own

    def rows(self, n: int) -> int:
        return max(1, round(n * self.share))


CATEGORIES = (
    Category(1, 0.5, "50%"),
    Category(2, 0.1, "10%"),
    Category(3, 0.01, "1%"),
    Category(4, 0.001, "0.1%"),
    Category(5, 0.01, "1% (partial index)", partial=True),
)
BY_VALUE = {c.value: c for c in CATEGORIES}
SELECTIVITIES = tuple(c for c in CATEGORIES if not c.partial)  # the page's and plot's axis
PARTIAL = next(c for c in CATEGORIES if c.partial)
TWIN = next(c for c in SELECTIVITIES if c.share == PARTIAL.share)  # same share, no partial index
REST = 0

DDL = """CREATE TABLE IF NOT EXISTS filtered_tables (
    name text PRIMARY KEY,
    n integer NOT NULL,
    source text NOT NULL,
    fingerprint text NOT NULL,
    counts jsonb NOT NULL,
    chapters jsonb NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now(),
    copy_seconds double precision NOT NULL,
    index_seconds double precision NOT NULL,
    partial_seconds double precision NOT NULL,
    maintenance_work_mem text NOT NULL,
    workers integer NOT NULL
)"""


def offered_size(text: str | None) -> int:
    """The size a link asks for (`?rows=5000`) if it is one on offer, else the default."""
    return recall_tables.offered_size(text, DEFAULT_SIZE, SIZES)


def table_name(n: int, dimension: int) -> str:
    return f"filtered_n{n}_d{dimension}"


def index_names(table: str) -> dict[str, str]:
    """The table's indexes by role: the B-trees, the full HNSW and the partial one."""
    return {
        "category": f"{table}_category",
        "chapter": f"{table}_chapter",
        "hnsw": f"{table}_{IndexSpec().suffix()}",
        "partial": f"{table}_category{PARTIAL.value}_hnsw",
    }


# ---- the statements that build it -------------------------------------------------------


def category_case(n: int) -> str:
    """The CASE that turns a row's place in the shuffle into its category."""
    whens, upto = [], 0
    for c in CATEGORIES:
        upto += c.rows(n)
        whens.append(f"WHEN r <= {upto} THEN {c.value}")
    return "CASE " + " ".join(whens) + f" ELSE {REST} END"


def build_statements(n: int, dimension: int) -> list[Statement]:
    """The statements that build size `n`'s filtered table from its recall table (run and
    shown as they are; `passage_chapters` is loaded just before)."""
    table, source = table_name(n, dimension), recall_table(n, dimension)
    t, names = ident(table), index_names(table)
    hnsw = index_statement(table, IndexSpec())
    create = sql.SQL(
        "CREATE TABLE {t} AS\nWITH shuffled AS (\n"
        "    SELECT id, row_number() OVER (ORDER BY hashint4(id), id) AS r FROM {source}\n)\n"
        "SELECT t.id, t.embedding,\n       {case} AS category,\n       c.chapter\n"
        "FROM {source} t\nJOIN shuffled s USING (id)\nLEFT JOIN passage_chapters c USING (id)"
    ).format(t=t, source=ident(source), case=sql.SQL(category_case(n)))
    return [
        Statement.of(
            create,
            comment="passage_chapters: a temporary table (id, chapter) of the real rows, "
            "loaded with COPY just before",
        ),
        Statement.of(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(t)),
        *(
            Statement.of(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(ident(names[column]), t, ident(column))
            )
            for column in FILTER_COLUMNS
        ),
        hnsw,
        partial_index_statement(table),
        Statement.of(sql.SQL("ANALYZE {}").format(t)),
    ]


def partial_index_statement(table: str) -> Statement:
    spec = IndexSpec()
    return Statement.of(
        sql.SQL(
            "CREATE INDEX {name} ON {t}\n    USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = {m}, ef_construction = {efc})\n    WHERE category = {value}"
        ).format(
            name=ident(index_names(table)["partial"]),
            t=ident(table),
            m=sql.Literal(spec.m),
            efc=sql.Literal(spec.ef_construction),
            value=sql.Literal(PARTIAL.value),
        )
    )


# ---- what is there ----------------------------------------------------------------------


@dataclass(frozen=True)
class FilteredTable:
    """A built filtered table, as `filtered_tables` records it."""

    name: str
    n: int
    source: str
    counts: dict[int, int]  # category -> rows
    chapters: dict[str, int]  # chapter -> rows
    built_at: object
    copy_seconds: float
    index_seconds: float
    partial_seconds: float
    maintenance_work_mem: str
    workers: int

    def rows(self, column: str, value: object) -> int:
        """How many rows `column = value` matches (counted when the table was built)."""
        if column == "category":
            return self.counts.get(int(value), 0)  # type: ignore[call-overload]
        if column == "chapter":
            return self.chapters.get(str(value), 0)
        raise ValueError(f"{column} is not a filter column of {self.name}")

    def selectivity(self, column: str, value: object) -> float:
        return self.rows(column, value) / max(1, self.n)

    def top_chapters(self, limit: int = 8) -> list[str]:
        return [c for c, _ in Counter(self.chapters).most_common(limit)]


def ensure_meta(db: Database) -> None:
    db.ensure("filtered_tables", DDL)


def status(db: Database, ds: Dataset, n: int) -> FilteredTable | None:
    """Size `n`'s filtered table if it is built from this dataset's rows, else None."""
    ensure_meta(db)
    table = table_name(n, ds.dimension)
    row = db.fetchone(
        "SELECT name, n, source, counts, chapters, built_at, copy_seconds, index_seconds,"
        " partial_seconds, maintenance_work_mem, workers FROM filtered_tables"
        " WHERE name = %s AND fingerprint = %s AND to_regclass(%s) IS NOT NULL",
        (table, ds.fingerprint(), table),
    )
    if row is None:
        return None
    values = list(row)
    values[3] = {int(k): int(v) for k, v in values[3].items()}
    return FilteredTable(*values)


# ---- building ---------------------------------------------------------------------------


def build(
    db: Database,
    ds: Dataset,
    n: int,
    *,
    on_phase: Callable[[str], None] | None = None,
    on_backend: Callable[[int], None] | None = None,
) -> FilteredTable:
    """Build size `n`'s filtered table from its recall table (which must be loaded), unless
    it is built already; return it as recorded."""
    ensure_meta(db)
    table, source = table_name(n, ds.dimension), recall_table(n, ds.dimension)
    statements = build_statements(n, ds.dimension)
    plan = sizing.plan_size(n, ds.dimension, memory=sizing.memory_available())
    mwm, workers = f"{plan.maintenance_work_mem_mb}MB", builds.parallel_workers()
    settings = {
        **builds.build_settings(),
        "maintenance_work_mem": mwm,
        "max_parallel_maintenance_workers": workers,
    }
    with db.transaction(settings) as conn:
        if on_backend:
            on_backend(conn.info.backend_pid)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        built = status(db, ds, n)
        if built is not None:
            return built
        if on_phase:
            on_phase("copying")
        t0 = time.perf_counter()
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(table)))
        conn.execute(
            "CREATE TEMPORARY TABLE passage_chapters (id integer PRIMARY KEY, chapter text"
            " NOT NULL) ON COMMIT DROP"
        )
        real = ds.real_rows(n)
        labels = ds.chapters(real)
        with conn.cursor().copy("COPY passage_chapters (id, chapter) FROM STDIN") as cp:
            for i, label in enumerate(labels, start=1):
                cp.write_row((i, label))
        create, pkey, *btrees, hnsw, partial, analyze = statements
        for s in (create, pkey, *btrees, analyze):
            conn.execute(s.text)
        copy_seconds = time.perf_counter() - t0
        if on_phase:
            on_phase("indexing")
        t1 = time.perf_counter()
        conn.execute(hnsw.text)
        index_seconds = time.perf_counter() - t1
        t2 = time.perf_counter()
        conn.execute(partial.text)
        partial_seconds = time.perf_counter() - t2
        conn.execute(analyze.text)
        counts = dict(
            conn.execute(
                sql.SQL("SELECT category, count(*) FROM {} GROUP BY 1").format(ident(table))
            ).fetchall()
        )
        chapter_rows = dict(
            conn.execute(
                sql.SQL(
                    "SELECT chapter, count(*) FROM {} WHERE chapter IS NOT NULL GROUP BY 1"
                ).format(ident(table))
            ).fetchall()
        )
        conn.execute(
            "INSERT INTO filtered_tables (name, n, source, fingerprint, counts, chapters,"
            " copy_seconds, index_seconds, partial_seconds, maintenance_work_mem, workers)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET n = EXCLUDED.n, source = EXCLUDED.source,"
            " fingerprint = EXCLUDED.fingerprint, counts = EXCLUDED.counts,"
            " chapters = EXCLUDED.chapters, built_at = now(),"
            " copy_seconds = EXCLUDED.copy_seconds, index_seconds = EXCLUDED.index_seconds,"
            " partial_seconds = EXCLUDED.partial_seconds,"
            " maintenance_work_mem = EXCLUDED.maintenance_work_mem, workers = EXCLUDED.workers",
            (
                table, n, source, ds.fingerprint(), Jsonb({str(k): v for k, v in counts.items()}),
                Jsonb(chapter_rows), copy_seconds, index_seconds, partial_seconds, mwm, workers,
            ),
        )  # fmt: skip
    built = status(db, ds, n)
    assert built is not None
    return built
