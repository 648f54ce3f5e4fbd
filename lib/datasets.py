"""The recall page's data: one table per size, loaded with binary COPY, indexed, kept.

A dataset is the corpus model's real passage vectors as far as they go, then vectors from
the seeded generator in lib/synthetic.py. 100 real passages are held out as the query set
(never in a table), the same at every size. Size N lives in table `recall_n{N}_d{d}`:

    CREATE TABLE recall_n50000_d384 (id integer NOT NULL, embedding vector(384) NOT NULL);
    COPY recall_n50000_d384 (id, embedding) FROM STDIN WITH (FORMAT BINARY, FREEZE);
    CREATE INDEX recall_n50000_d384_hnsw_m16_efc64 ON recall_n50000_d384
        USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

Each table has one vector index at a time (the planner would otherwise choose between two
on its own); a rebuild with other parameters replaces it in one transaction, so readers keep
using the old one until the new one is ready. Loads and builds run in transactions that
abort when the client goes away (`client_connection_check_interval`), so a killed app leaves
no half-built table or index behind; an INVALID index (from someone's failed CREATE INDEX
CONCURRENTLY) is dropped and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.corpus import Passage, load_passages
from lib.database import Database
from lib.embeddings.local import MINILM
from lib.psql import Statement, ident
from lib.synthetic import CHUNK, Generator, cached_generator, rows

PROJECT_DIR = Path(__file__).resolve().parent.parent
CACHE_DIR = PROJECT_DIR / ".cache"
SEED = 0
N_QUERIES = 100
SIZES = (500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)
GRAPH_NOTICE = "hnsw graph no longer fits into maintenance_work_mem"

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


@dataclass(frozen=True)
class Dataset:
    """The corpus model's vectors split into held-out queries and table rows, plus the
    generator that extends the rows past the real ones."""

    model_name: str
    queries: np.ndarray  # (N_QUERIES, d) real passages, never in a table
    query_passages: tuple[Passage, ...]
    real: np.ndarray  # (n_real, d) real passages, rows 1..n_real of every table
    real_passages: tuple[Passage, ...]
    generator: Generator
    seed: int

    @property
    def dimension(self) -> int:
        return self.real.shape[1]

    @property
    def n_real(self) -> int:
        return len(self.real)

    @cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256(self.real.tobytes())
        h.update(f"{self.model_name}\0{self.seed}\0{self.generator.fingerprint()}".encode())
        return h.hexdigest()[:16]

    @cached_property
    def queries_fingerprint(self) -> str:
        """A short hash of the held-out query vectors (keys stored ground truths)."""
        return hashlib.sha256(self.queries.tobytes()).hexdigest()[:16]

    def fingerprint(self) -> str:
        """A hash of the rows' source (real vectors, model, seed, generator); computed once."""
        return self._fingerprint

    def real_rows(self, n: int) -> int:
        return min(n, self.n_real)

    def passage_of(self, row_id: int) -> Passage | None:
        """The manual passage behind row `row_id` (ids start at 1), or None if generated."""
        return self.real_passages[row_id - 1] if 1 <= row_id <= self.n_real else None


@lru_cache(maxsize=2)
def load_dataset(model_name: str = MINILM.name, seed: int = SEED) -> Dataset:
    """The dataset of `model_name`'s passage vectors (shared, read-only arrays)."""
    from lib.embeddings.registry import load_model
    from lib.vectors import passage_vectors

    passages = load_passages()
    vectors = passage_vectors(load_model(model_name), passages).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(passages))
    q, r = order[:N_QUERIES], order[N_QUERIES:]
    real = np.ascontiguousarray(vectors[r])
    queries = np.ascontiguousarray(vectors[q])
    gen = cached_generator(real, CACHE_DIR, seed=seed)
    for a in (real, queries):
        a.setflags(write=False)
    return Dataset(
        model_name=model_name,
        queries=queries,
        query_passages=tuple(passages[i] for i in q),
        real=real,
        real_passages=tuple(passages[i] for i in r),
        generator=gen,
        seed=seed,
    )


def table_name(n: int, dimension: int) -> str:
    return f"recall_n{n}_d{dimension}"


# ---------------------------------------------------------------------------------------
# Index specifications


@dataclass(frozen=True)
class IndexSpec:
    """Which vector index a table should have: HNSW (m, ef_construction) or IVFFlat (lists)."""

    kind: str = "hnsw"  # "hnsw" or "ivfflat"
    m: int = 16
    ef_construction: int = 64
    lists: int = 0  # ivfflat; 0 means pgvector's advice for the table's size

    def resolved(self, n: int) -> IndexSpec:
        if self.kind == "ivfflat":
            return IndexSpec("ivfflat", lists=self.lists or default_lists(n))
        return IndexSpec("hnsw", m=self.m, ef_construction=self.ef_construction)

    def params(self) -> dict[str, int]:
        if self.kind == "ivfflat":
            return {"lists": self.lists}
        return {"m": self.m, "ef_construction": self.ef_construction}

    def label(self) -> str:
        if self.kind == "ivfflat":
            return f"IVFFlat lists={self.lists}"
        return f"HNSW m={self.m} ef_construction={self.ef_construction}"

    def suffix(self) -> str:
        if self.kind == "ivfflat":
            return f"ivfflat_l{self.lists}"
        return f"hnsw_m{self.m}_efc{self.ef_construction}"

    def check(self) -> None:
        if self.kind == "hnsw":
            if not (2 <= self.m <= 100):
                raise ValueError("m must be between 2 and 100")
            if not (4 <= self.ef_construction <= 1000) or self.ef_construction < 2 * self.m:
                raise ValueError("ef_construction must be between 4 and 1000 and at least 2 × m")
        elif self.kind == "ivfflat":
            if not (1 <= self.lists <= 32768):
                raise ValueError("lists must be between 1 and 32768")
        else:
            raise ValueError(f"unknown index kind {self.kind!r}")


def default_lists(n: int) -> int:
    """pgvector's advice: rows / 1000 up to a million rows, sqrt(rows) beyond."""
    return max(1, n // 1000) if n <= 1_000_000 else int(np.sqrt(n))


def index_name(table: str, spec: IndexSpec) -> str:
    return f"{table}_{spec.suffix()}"


def index_statement(table: str, spec: IndexSpec) -> Statement:
    """The CREATE INDEX statement that builds `spec` on `table` (run and shown as is)."""
    with_ = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.SQL(k), sql.Literal(v)) for k, v in spec.params().items()
    )
    return Statement.of(
        sql.SQL(
            "CREATE INDEX {name} ON {table}\n    USING {kind} (embedding vector_cosine_ops) "
            "WITH ({with_})"
        ).format(
            name=ident(index_name(table, spec)),
            table=ident(table),
            kind=sql.SQL(spec.kind),
            with_=with_,
        )
    )


# ---------------------------------------------------------------------------------------
# Sizing: what a size costs, and whether this machine can afford it


@dataclass(frozen=True)
class SizePlan:
    n: int
    dimension: int
    table_bytes: int
    graph_bytes: int
    maintenance_work_mem_mb: int
    memory_available: int | None
    disk_available: int | None
    ok: bool
    reason: str = ""


def graph_bytes(n: int, dimension: int, m: int = 16) -> int:
    """The HNSW graph's size while it is built in memory: about N × (8 + 4d) for the vectors
    plus each element's neighbour lists (2m on the bottom layer), times 1.3 for the rest."""
    return int(n * (8 + 4 * dimension + 2 * m * 8) * 1.3)


def table_bytes(n: int, dimension: int) -> int:
    """Heap size: a 24-byte tuple header, the id, the vector, alignment, page overhead."""
    return int(n * (24 + 4 + 4 + 8 + 4 * dimension + 4) * 1.08)


def memory_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def disk_available(db: Database) -> int | None:
    """Free disk under the embedded server's data directory (None for a remote server)."""
    if db.kind != "embedded":
        return None
    path = db.location.removeprefix("embedded PostgreSQL in ").strip()
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


MIN_ROWS, MAX_ROWS = 100, 2_000_000_000


def parse_rows(text: str) -> int:
    """A row count as a person types it: 250000, 250,000, 250_000, 2.5e5 or 1e9.

    Raises ValueError with a message for the page when it is not a whole number of rows in
    [MIN_ROWS, MAX_ROWS]."""
    cleaned = re.sub(r"[\s,_]", "", text or "")
    if not cleaned:
        raise ValueError("Type a number of rows, such as 250,000 or 1e6.")
    if not re.fullmatch(r"\d+(\.\d*)?([eE]\+?\d+)?", cleaned):
        raise ValueError(f"“{text.strip()}” is not a number of rows: type digits, such as 250,000.")
    value = float(cleaned)
    if not MIN_ROWS <= value <= MAX_ROWS:
        raise ValueError(
            f"{text.strip()} rows is outside the range this page builds: "
            f"{MIN_ROWS:,} to {MAX_ROWS:,}."
        )
    if value != int(value):
        raise ValueError(f"{text.strip()} is not a whole number of rows.")
    n = int(value)
    return n


def plan_size(
    n: int,
    dimension: int,
    *,
    m: int = 16,
    memory: int | None = None,
    disk: int | None = None,
) -> SizePlan:
    """What building size `n` needs, and a refusal when memory or disk cannot hold it.

    The graph must fit in half the free memory (the rest is for shared buffers, the OS and
    other users); the table and its index must fit in free disk with 20% to spare."""
    tb = table_bytes(n, dimension)
    gb = graph_bytes(n, dimension, m)
    mwm_cap = (memory // 2) if memory else 2 * 1024**3
    mwm = max(64 * 1024**2, min(gb, mwm_cap))
    reason = ""
    if n < 1:
        reason = "A table needs at least one row."
    elif memory is not None and gb > memory // 2:
        reason = (
            f"{n:,} rows of {dimension} dimensions need an HNSW graph of about "
            f"{_size(gb)} in memory while it is built; this machine has {_size(memory)} free, "
            f"and at most half of it may go to one build."
        )
    elif disk is not None and (tb + gb) * 1.2 > disk:
        reason = (
            f"{n:,} rows of {dimension} dimensions need about {_size(tb)} of table and "
            f"{_size(gb)} of index on disk; the database's disk has {_size(disk)} free."
        )
    return SizePlan(
        n, dimension, tb, gb, int(mwm // 1024**2), memory, disk, ok=not reason, reason=reason
    )


def seconds_estimate(db: Database, n: int) -> float | None:
    """Rough time to load and index `n` rows here, from the largest load and HNSW build
    measured on this server (build rate scaled by log n: each insert searches a deeper graph)."""
    ensure_meta(db)
    row = db.fetchone(
        "SELECT (SELECT n / load_seconds FROM recall_tables WHERE load_seconds > 0"
        "        ORDER BY n DESC LIMIT 1),"
        " t.n, t.n / b.build_seconds FROM recall_index_builds b"
        " JOIN recall_tables t ON t.name = b.table_name"
        " WHERE b.kind = 'hnsw' AND b.build_seconds > 0 ORDER BY t.n DESC LIMIT 1"
    )
    if not row or not row[0] or not row[2]:
        return None
    load_rate, n0, build_rate = float(row[0]), int(row[1]), float(row[2])
    rate = build_rate * np.log(max(n0, 2)) / np.log(max(n, 2))
    return n / load_rate + n / rate


def describe_plan(plan: SizePlan, seconds: float | None) -> str:
    """What a size will cost, in a sentence."""
    when = (
        f" Roughly {seconds / 60:.0f} min to load and index here, from the rates measured on "
        "this server."
        if seconds and seconds >= 90
        else (f" Roughly {seconds:.0f} s to load and index here." if seconds else "")
    )
    return (
        f"{plan.n:,} rows: a table of about {_size(plan.table_bytes)}, and an HNSW graph of "
        f"about {_size(plan.graph_bytes)} in memory while it is built "
        f"(maintenance_work_mem {plan.maintenance_work_mem_mb:,} MB).{when}"
    )


def _size(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if b < 1024 or unit == "TB":
            return f"{b:,.0f} {unit}" if unit in ("B", "kB") else f"{b:,.1f} {unit}"
        b /= 1024
    return f"{b:.1f} TB"


# ---------------------------------------------------------------------------------------
# Binary COPY


COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)


def copy_rows(ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """Rows (id integer, embedding vector) in PostgreSQL's binary COPY format, built with numpy.

    Each row: field count (int16 2), id length (int32 4) and value, vector length (int32
    4 + 4d) and pgvector's binary form (int16 dimensions, int16 unused, d float4), big-endian.
    """
    n, d = vectors.shape
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i4"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (d,)),
        ]
    )
    out = np.empty(n, dtype=row)
    out["fields"] = 2
    out["id_len"] = 4
    out["id"] = ids
    out["vec_len"] = 4 + 4 * d
    out["dim"] = d
    out["unused"] = 0
    out["vec"] = vectors
    return out.tobytes()


# ---------------------------------------------------------------------------------------
# Status of a size on the server


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

    def create() -> None:
        with db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('recall_meta'))")
            conn.execute(META_DDL)

    db.once("recall_meta", create)


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


# ---------------------------------------------------------------------------------------
# Loading and indexing

Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    table: str
    n: int
    loaded: bool = False  # this call loaded the table (False: it was already there)
    load_seconds: float | None = None
    indexed: bool = False
    build_seconds: float | None = None
    index: str | None = None
    maintenance_work_mem: str | None = None
    workers: int | None = None
    notices: list[str] = field(default_factory=list)


def build_settings() -> dict[str, str]:
    """Settings for loads and builds: abort if the app dies mid-way, no statement limit."""
    return {"client_connection_check_interval": "2s", "statement_timeout": "0"}


def load_table(
    db: Database,
    ds: Dataset,
    n: int,
    *,
    progress: Progress | None = None,
    on_backend: Callable[[int], None] | None = None,
) -> float | None:
    """Create and fill size `n`'s table unless it already holds this dataset; return seconds
    spent loading (None when nothing was done)."""
    ensure_meta(db)
    table = table_name(n, ds.dimension)
    ident = sql.Identifier(table)
    with db.transaction(build_settings()) as conn:
        if on_backend:
            on_backend(conn.info.backend_pid)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        if table_status(db, ds, n).loaded:
            return None
        t0 = time.perf_counter()
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(
            sql.SQL("CREATE TABLE {} (id integer NOT NULL, embedding vector({}) NOT NULL)").format(
                ident, sql.Literal(ds.dimension)
            )
        )
        copy = sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY, FREEZE)")
        done = 0
        with conn.cursor().copy(copy.format(ident)) as cp:
            cp.write(COPY_HEADER)
            for block in rows(ds.real, ds.generator, n, seed=ds.seed):
                ids = np.arange(done + 1, done + 1 + len(block), dtype=np.int32)
                cp.write(copy_rows(ids, block))
                done += len(block)
                if progress:
                    progress(done, n)
            cp.write(COPY_TRAILER)
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(ident))
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
        seconds = time.perf_counter() - t0
        conn.execute(
            "INSERT INTO recall_tables"
            " (name, n, dimension, model, fingerprint, real_rows, load_seconds)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET n = EXCLUDED.n, dimension = EXCLUDED.dimension,"
            " model = EXCLUDED.model, fingerprint = EXCLUDED.fingerprint,"
            " real_rows = EXCLUDED.real_rows, loaded_at = now(),"
            " load_seconds = EXCLUDED.load_seconds",
            (table, n, ds.dimension, ds.model_name, ds.fingerprint(), ds.real_rows(n), seconds),
        )
        conn.execute("DELETE FROM recall_index_builds WHERE table_name = %s", (table,))
    return seconds


def parallel_workers() -> int:
    """Parallel maintenance workers for a build: one per core beyond the leader's, at most 2."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


def build_index(
    db: Database,
    ds: Dataset,
    n: int,
    spec: IndexSpec,
    *,
    on_notice: Callable[[str], None] | None = None,
    on_backend: Callable[[int], None] | None = None,
) -> BuildReport:
    """Give size `n`'s table the index `spec` (replacing any other vector index on it).

    `maintenance_work_mem` is sized from the graph estimate within the machine's memory, so
    the build stays in memory; if pgvector still says "hnsw graph no longer fits into
    maintenance_work_mem", the notice is passed to `on_notice` and recorded with the build."""
    spec = spec.resolved(n)
    spec.check()
    table = table_name(n, ds.dimension)
    name = index_name(table, spec)
    plan = plan_size(n, ds.dimension, m=spec.m, memory=memory_available())
    report = BuildReport(table, n, index=name)
    notices: list[str] = []

    def handler(diag: psycopg.errors.Diagnostic) -> None:
        text = diag.message_primary or ""
        notices.append(text)
        if on_notice:
            on_notice(text)

    workers = parallel_workers()
    mwm = f"{plan.maintenance_work_mem_mb}MB"
    settings = {
        **build_settings(),
        "maintenance_work_mem": mwm,
        "max_parallel_maintenance_workers": workers,
    }
    with db.transaction(settings) as conn:
        if on_backend:
            on_backend(conn.info.backend_pid)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        status = table_status(db, ds, n)
        if not status.loaded:
            raise RuntimeError(f"{table} is not loaded")
        if status.ready(spec):
            return report
        conn.add_notice_handler(handler)
        try:
            t0 = time.perf_counter()
            if any(i.name == name for i in status.indexes):
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            conn.execute(index_statement(table, spec).text)
            seconds = time.perf_counter() - t0
            for old in status.indexes:
                if old.name != name:
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(old.name)))
                    conn.execute(
                        "DELETE FROM recall_index_builds WHERE index_name = %s", (old.name,)
                    )
        finally:
            conn.remove_notice_handler(handler)
        graph_notice = next((t for t in notices if GRAPH_NOTICE in t), None)
        conn.execute(
            "INSERT INTO recall_index_builds (index_name, table_name, kind, params,"
            " build_seconds, maintenance_work_mem, workers, notice)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (index_name) DO UPDATE SET params = EXCLUDED.params,"
            " built_at = now(), build_seconds = EXCLUDED.build_seconds,"
            " maintenance_work_mem = EXCLUDED.maintenance_work_mem,"
            " workers = EXCLUDED.workers, notice = EXCLUDED.notice",
            (
                name,
                table,
                spec.kind,
                Jsonb(spec.params()),
                seconds,
                mwm,
                workers,
                graph_notice,
            ),
        )
    report.indexed = True
    report.build_seconds = seconds
    report.maintenance_work_mem = mwm
    report.workers = workers
    report.notices = notices
    return report


def prepare(
    db: Database,
    ds: Dataset,
    n: int,
    spec: IndexSpec = IndexSpec(),
    *,
    progress: Progress | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> BuildReport:
    """Load size `n` if needed, then give it the index `spec` if needed."""
    seconds = load_table(db, ds, n, progress=progress)
    report = build_index(db, ds, n, spec, on_notice=on_notice)
    report.loaded = seconds is not None
    report.load_seconds = seconds
    return report


PROGRESS_SQL = """SELECT p.phase, p.tuples_done, p.tuples_total, p.blocks_done, p.blocks_total,
       p.pid
FROM pg_stat_progress_create_index p
WHERE p.relid = to_regclass(%s)"""


@dataclass(frozen=True)
class IndexProgress:
    phase: str
    tuples_done: int
    tuples_total: int
    blocks_done: int
    blocks_total: int
    pid: int

    def fraction(self) -> float | None:
        if self.tuples_total:
            return min(1.0, self.tuples_done / self.tuples_total)
        if self.blocks_total:
            return min(1.0, self.blocks_done / self.blocks_total)
        return None


def index_progress(db: Database, table: str) -> IndexProgress | None:
    """The server's report on a CREATE INDEX running on `table` (from any process)."""
    row = db.fetchone(PROGRESS_SQL, (table,))
    return IndexProgress(*row) if row else None


def copy_progress(db: Database, pid: int) -> int | None:
    """Rows a COPY in backend `pid` has processed so far, as the server counts them."""
    row = db.fetchone("SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s", (pid,))
    return int(row[0]) if row else None


__all__ = [
    "CHUNK",
    "Dataset",
    "IndexSpec",
    "SIZES",
    "build_index",
    "load_dataset",
    "load_table",
    "plan_size",
    "prepare",
    "table_name",
    "table_status",
]
