"""The recall tables on the server: one table per size, `recall_n{N}_d{d}`, loaded once
(lib/dataset/builds.py) with lib/dataset/passages.py's rows and kept, and the bookkeeping that
says what each holds and how its index was built.

Each table has one vector index at a time, so the planner never chooses between two: a
rebuild with other parameters replaces it in one transaction, and readers keep using the old
one until the new one is ready. An INVALID index (from someone's failed CREATE INDEX
CONCURRENTLY) is dropped and rebuilt. The Index tuning page's other configurations live on
copies of a table's rows (lib/dataset/index_configs.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lib.core.database import Database
from lib.dataset.index_specs import IndexSpec
from lib.dataset.passages import Dataset

SIZES = (500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)

META_DDL = """CREATE TABLE IF NOT EXISTS recall_tables (
    name text PRIMARY KEY,
    n integer NOT NULL,
    dimension integer NOT NULL,
    model text NOT NULL,
    fingerprint text NOT NULL,
    real_rows integer NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    load_seconds double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS recall_index_builds (
    index_name text PRIMARY KEY,
    table_name text NOT NULL,
    kind text NOT NULL,
    params jsonb NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now(),
    build_seconds double precision NOT NULL,
    maintenance_work_mem text NOT NULL,
    workers integer NOT NULL,
    notice text
)"""


def offered_size(text: str | None, default: int, sizes: Sequence[int] = SIZES) -> int:
    """The size a link asks for (`?rows=5000`, `5,000`), if it is one on offer, else `default`."""
    digits = (text or "").replace(",", "").replace("_", "").strip()
    return int(digits) if digits.isdigit() and int(digits) in sizes else default


def table_name(n: int, dimension: int) -> str:
    return f"recall_n{n}_d{dimension}"


@dataclass(frozen=True)
class VectorIndex:
    name: str
    kind: str
    params: dict[str, int]
    valid: bool
    build_seconds: float | None = None
    built_at: object = None
    notice: str | None = None

    def spec(self) -> IndexSpec:
        if self.kind == "ivfflat":
            return IndexSpec("ivfflat", lists=self.params.get("lists", 100))
        return IndexSpec(
            "hnsw",
            m=self.params.get("m", 16),
            ef_construction=self.params.get("ef_construction", 64),
        )

    def label(self) -> str:
        return self.spec().label()


@dataclass(frozen=True)
class TableStatus:
    table: str
    loaded: bool  # the table exists and holds this dataset's rows
    rows: int = 0
    loaded_at: object = None
    load_seconds: float | None = None
    indexes: tuple[VectorIndex, ...] = ()

    @property
    def index(self) -> VectorIndex | None:
        valid = [i for i in self.indexes if i.valid]
        return valid[0] if valid else None

    def ready(self, spec: IndexSpec | None = None) -> bool:
        """Loaded and indexed (with `spec`, when given), with no INVALID index around."""
        if not self.loaded or self.index is None or any(not i.valid for i in self.indexes):
            return False
        return spec is None or self.index.spec() == spec


def ensure_meta(db: Database) -> None:
    """Create the bookkeeping tables if missing: once per Database, never on a page rerun."""

    db.ensure("recall_meta", META_DDL)


INDEXES_SQL = """SELECT i.relname, am.amname, i.reloptions, x.indisvalid,
       b.build_seconds, b.built_at, b.notice
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN recall_index_builds b ON b.index_name = i.relname
WHERE x.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat')
ORDER BY i.oid"""


def _parse_options(options: Sequence[str] | None) -> dict[str, int]:
    out = {}
    for opt in options or ():
        k, _, v = opt.partition("=")
        if v.isdigit():
            out[k] = int(v)
    return out


def table_status(db: Database, ds: Dataset, n: int) -> TableStatus:
    """Whether size `n` is loaded and which vector indexes it has, as the server says now."""
    ensure_meta(db)
    table = table_name(n, ds.dimension)
    row = db.fetchone(
        "SELECT n, loaded_at, load_seconds FROM recall_tables"
        " WHERE name = %s AND fingerprint = %s AND to_regclass(%s) IS NOT NULL",
        (table, ds.fingerprint(), table),
    )
    if row is None:
        return TableStatus(table, loaded=False)
    indexes = tuple(
        VectorIndex(name, am, _parse_options(opts), valid, secs, at, notice)
        for name, am, opts, valid, secs, at, notice in db.fetchall(INDEXES_SQL, (table,))
    )
    return TableStatus(table, True, row[0], row[1], row[2], indexes)
