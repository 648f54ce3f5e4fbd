"""What a recall table of n rows costs (table, HNSW graph in memory, disk), whether this
machine can afford it, how long it should take here, and the row count a person types."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.core import jobs
from lib.core.database import Database
from lib.dataset.recall_tables import ensure_meta

# The largest table a page, a job or a command line builds (make prepare's largest is 500,000):
# a room shares one machine. Checked when a size is typed and again when its job is queued.
MAX_BUILD_ROWS = 2_000_000
DISK_SPARE = 1.2  # a build must leave a fifth of what it needs free on the database's disk


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


def disk_bytes(n: int, dimension: int, m: int = 16) -> int:
    """What building n rows and their HNSW index takes on disk: the table and the graph."""
    return table_bytes(n, dimension) + graph_bytes(n, dimension, m)


def memory_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def disk_available(db: Database) -> int | None:
    """Free disk under the embedded server's data directory; None when it cannot be read (a
    server on another machine, through DATABASE_URL): then only MAX_BUILD_ROWS holds."""
    if db.kind != "embedded" or db.data_directory is None:
        return None
    try:
        return shutil.disk_usage(db.data_directory).free
    except OSError:
        return None


class SizeRefused(ValueError):
    """A build refused when it is queued: more rows than MAX_BUILD_ROWS, or more disk than the
    database's machine has free once the jobs already queued have taken theirs. The message
    says why, with the figures, to be shown as plain text."""

    shown_as_is = True


def check_queued(
    db: Database,
    n: int,
    dimension: int,
    *,
    kind: str,
    key: dict,
    what: str,
    m: int = 16,
    disk: bool = True,
) -> dict:
    """Refuse (SizeRefused) to queue `what`, a build of n rows, past MAX_BUILD_ROWS or past
    the free disk (when it can be read) less what the live jobs will take; else the facts to
    queue it with (`disk_bytes`, what it will take). `disk` False: it writes nothing (a sweep)."""
    if n > MAX_BUILD_ROWS:
        raise SizeRefused(
            f"{what}: {n:,} rows is more than this lab builds ({MAX_BUILD_ROWS:,} rows at most; "
            "a room shares one machine)."
        )
    if not disk:
        return {}
    need = disk_bytes(n, dimension, m)
    free = disk_available(db)
    if free is not None:
        pending = jobs.pending_disk_bytes(db, besides=(kind, key))
        if (need + pending) * DISK_SPARE > free:
            queued = f", the jobs already queued about {_size(pending)}," if pending else ""
            raise SizeRefused(
                f"{what} needs about {_size(need)} of disk (table and index){queued} and the "
                f"database's disk has {_size(free)} free (a fifth is kept spare). Build a "
                "smaller size, or wait for the queue to finish."
            )
    return {"disk_bytes": need}


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
    elif disk is not None and (tb + gb) * DISK_SPARE > disk:
        reason = (
            f"{n:,} rows of {dimension} dimensions need about {_size(tb)} of table and "
            f"{_size(gb)} of index on disk; the database's disk has {_size(disk)} free."
        )
    elif n > MAX_BUILD_ROWS:
        reason = (
            f"{n:,} rows is more than this lab builds: {MAX_BUILD_ROWS:,} rows at most "
            "(a room shares one machine)."
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
    disk = (
        f" The database's disk has {_size(plan.disk_available)} free."
        if plan.disk_available is not None
        else " The database's free disk cannot be read (a server on another machine): only "
        f"the cap of {MAX_BUILD_ROWS:,} rows is checked."
    )
    return (
        f"{plan.n:,} rows: a table of about {_size(plan.table_bytes)}, and an HNSW graph of "
        f"about {_size(plan.graph_bytes)} in memory while it is built "
        f"(maintenance_work_mem {plan.maintenance_work_mem_mb:,} MB).{disk}{when}"
    )


def _size(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if b < 1024 or unit == "TB":
            return f"{b:,.0f} {unit}" if unit in ("B", "kB") else f"{b:,.1f} {unit}"
        b /= 1024
    return f"{b:.1f} TB"
