"""The Index tuning page's copies and indexes (`tuning_copies`, `tuning_indexes`): built once,
recorded with what they cost, read back with their size on disk. Where each configuration
lives, and why: lib/dataset/index_configs.py.

A build (`build_config`) runs in one transaction under an advisory lock on its table's name:
the copy when it is missing or was made from an older load of its recall table, then the
index, each step recorded. Two processes asking for the same configuration get one build;
an app that dies mid-way leaves nothing behind (`client_connection_check_interval`). The
statements are `lib.core.psql.Statement`s: the page shows the script that ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from psycopg import sql
from psycopg.types.json import Jsonb

from lib.core.database import Database, Setting
from lib.core.psql import Script
from lib.dataset.builds import NoticeCollector, build_settings, index_build_settings
from lib.dataset.index_configs import (
    Config,
    Placement,
    copy_statements,
    index_statement,
    placement,
)
from lib.dataset.passages import Dataset
from lib.dataset.recall_tables import TableStatus, ensure_meta, table_status

DDL = """CREATE TABLE IF NOT EXISTS tuning_copies (
    table_name text PRIMARY KEY,
    source text NOT NULL,
    source_loaded_at timestamptz NOT NULL,
    copied_at timestamptz NOT NULL DEFAULT now(),
    copy_seconds double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS tuning_indexes (
    index_name text PRIMARY KEY,
    table_name text NOT NULL,
    n integer NOT NULL,
    config jsonb NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now(),
    build_seconds double precision NOT NULL,
    maintenance_work_mem text NOT NULL,
    workers integer NOT NULL,
    notice text
)"""


def ensure_tables(db: Database) -> None:
    """Create the bookkeeping tables if missing: once per Database, never on a page rerun."""

    def create() -> None:
        with db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('tuning_meta'))")
            conn.execute(DDL)

    ensure_meta(db)
    db.once("tuning_meta", create)


def base_placement(status: TableStatus, ds: Dataset, n: int, config: Config) -> Placement:
    """Where `config` lives for size `n`, given the recall table's status now."""
    base_spec = status.index.spec() if status.index else None
    return placement(config.resolved(n), n, ds.dimension, base_spec)


def build_script(place: Placement, settings: dict[str, Setting], *, copy: bool) -> Script:
    """What a build runs, as a psql script (the copy's statements when it makes the copy)."""
    statements = copy_statements(place.table, place.source) if copy else []
    return Script((*statements, index_statement(place)), settings)


@dataclass
class BuildResult:
    place: Placement
    copied: bool = False
    copy_seconds: float | None = None
    indexed: bool = False
    build_seconds: float | None = None
    settings: dict[str, Setting] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def build_config(
    db: Database,
    ds: Dataset,
    n: int,
    config: Config,
    *,
    on_backend: Callable[[int], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> BuildResult:
    """Give size `n` the configuration `config`: its copy of the rows if needed, then its
    index, unless they are there already. The recall table itself must be loaded."""
    config = config.resolved(n)
    config.check()
    ensure_tables(db)
    status = table_status(db, ds, n)
    if not status.loaded:
        raise RuntimeError(f"{status.table} is not loaded yet")
    place = base_placement(status, ds, n, config)
    result = BuildResult(place)
    if not place.is_copy:
        return result  # the recall table's own index: lib/harness/size_jobs.py builds it
    settings = index_build_settings(n, ds.dimension, config.m)
    result.settings = settings
    handler = NoticeCollector(on_notice)

    with db.transaction(settings) as conn:
        if on_backend:
            on_backend(conn.info.backend_pid)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (place.table,))
        fresh = conn.execute(
            "SELECT 1 FROM tuning_copies WHERE table_name = %s AND source_loaded_at = %s"
            " AND to_regclass(%s) IS NOT NULL",
            (place.table, status.loaded_at, place.table),
        ).fetchone()
        if not fresh:
            if on_phase:
                on_phase("copying")
            t0 = time.perf_counter()
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(place.table)))
            conn.execute("DELETE FROM tuning_indexes WHERE table_name = %s", (place.table,))
            for statement in copy_statements(place.table, place.source):
                conn.execute(statement.text)
            result.copied, result.copy_seconds = True, time.perf_counter() - t0
            conn.execute(
                "INSERT INTO tuning_copies (table_name, source, source_loaded_at, copy_seconds)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (table_name) DO UPDATE SET"
                " source = EXCLUDED.source, source_loaded_at = EXCLUDED.source_loaded_at,"
                " copied_at = now(), copy_seconds = EXCLUDED.copy_seconds",
                (place.table, place.source, status.loaded_at, result.copy_seconds),
            )
        built = conn.execute(
            "SELECT 1 FROM tuning_indexes i JOIN pg_index x"
            " ON x.indexrelid = to_regclass(i.index_name)"
            " WHERE i.index_name = %s AND x.indisvalid",
            (place.index,),
        ).fetchone()
        if built:
            return result
        if on_phase:
            on_phase("indexing")
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(place.index)))
        conn.add_notice_handler(handler)
        try:
            t0 = time.perf_counter()
            conn.execute(index_statement(place).text)
            result.build_seconds = time.perf_counter() - t0
        finally:
            conn.remove_notice_handler(handler)
        conn.execute(
            "INSERT INTO tuning_indexes (index_name, table_name, n, config, build_seconds,"
            " maintenance_work_mem, workers, notice) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (index_name) DO UPDATE SET config = EXCLUDED.config,"
            " built_at = now(), build_seconds = EXCLUDED.build_seconds,"
            " maintenance_work_mem = EXCLUDED.maintenance_work_mem,"
            " workers = EXCLUDED.workers, notice = EXCLUDED.notice",
            (
                place.index, place.table, n, Jsonb(config.to_json()), result.build_seconds,
                settings["maintenance_work_mem"], settings["max_parallel_maintenance_workers"],
                handler.graph_notice(),
            ),
        )  # fmt: skip
    result.indexed = True
    result.notices = handler.texts
    return result


# ---------------------------------------------------------------------------------------
# What is built, read now


@dataclass(frozen=True)
class ConfigStatus:
    """One configuration for one size, as the server says now."""

    place: Placement
    built: bool
    built_at: datetime | None = None
    build_seconds: float | None = None
    copy_seconds: float | None = None
    maintenance_work_mem: str | None = None
    workers: int | None = None
    index_bytes: int | None = None
    table_bytes: int | None = None
    notice: str | None = None

    @property
    def config(self) -> Config:
        return self.place.config

    def build_script(self) -> Script:
        """The index's build as it ran (the copy included when the copy is this config's)."""
        settings: dict[str, Setting] = {}
        if self.maintenance_work_mem:
            settings = {**build_settings(), "maintenance_work_mem": self.maintenance_work_mem,
                        "max_parallel_maintenance_workers": self.workers or 0}  # fmt: skip
        return build_script(self.place, settings, copy=self.place.is_copy)


COPIES_SQL = """SELECT i.index_name, i.built_at, i.build_seconds, i.maintenance_work_mem,
       i.workers, i.notice, c.copy_seconds,
       pg_relation_size(to_regclass(i.index_name)), pg_relation_size(to_regclass(i.table_name))
FROM tuning_indexes i
JOIN tuning_copies c ON c.table_name = i.table_name AND c.source_loaded_at = %s
JOIN pg_index x ON x.indexrelid = to_regclass(i.index_name) AND x.indisvalid
WHERE i.index_name = ANY(%s)"""

BASE_SQL = """SELECT b.built_at, b.build_seconds, b.maintenance_work_mem, b.workers, b.notice,
       pg_relation_size(to_regclass(b.index_name)), pg_relation_size(to_regclass(b.table_name))
FROM recall_index_builds b WHERE b.index_name = %s"""


def statuses(
    db: Database, ds: Dataset, n: int, status: TableStatus, configs: Sequence[Config]
) -> list[ConfigStatus]:
    """Each configuration's placement and build facts for size `n` (two small queries)."""
    ensure_tables(db)
    places = [base_placement(status, ds, n, c) for c in configs]
    copies = [p.index for p in places if p.is_copy]
    found = {}
    if copies and status.loaded:
        found = {r[0]: r[1:] for r in db.fetchall(COPIES_SQL, (status.loaded_at, copies))}
    base = None
    if status.index is not None and any(not p.is_copy for p in places):
        base = db.fetchone(BASE_SQL, (status.index.name,))
    out = []
    for p in places:
        if p.is_copy and p.index in found:
            at, secs, mwm, workers, notice, copy_secs, ib, tb = found[p.index]
            out.append(ConfigStatus(p, True, at, secs, copy_secs, mwm, workers, ib, tb, notice))
        elif not p.is_copy and base is not None:
            at, secs, mwm, workers, notice, ib, tb = base
            out.append(ConfigStatus(p, True, at, secs, None, mwm, workers, ib, tb, notice))
        else:
            out.append(ConfigStatus(p, False))
    return out


def drop_copies(db: Database, n: int | None = None) -> list[str]:
    """Drop the Index tuning copies (of size `n`, or all) and their records; their names."""
    ensure_tables(db)
    rows = db.fetchall(
        "SELECT table_name FROM tuning_copies WHERE %s::int IS NULL OR table_name LIKE %s",
        (n, f"tune_n{n}_%"),
    )
    names = [r[0] for r in rows]
    with db.transaction() as conn:
        for name in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute("DELETE FROM tuning_indexes WHERE table_name = %s", (name,))
            conn.execute("DELETE FROM tuning_copies WHERE table_name = %s", (name,))
    return names


class Busy(RuntimeError):
    """The copy is being built (or dropped) right now; the message says so."""

    shown_as_is = True


def drop_config(db: Database, place: Placement) -> list[str]:
    """Drop a pinned configuration for everyone: its index on its copy, and the copy itself
    once no other configuration's index is on it, with their records; what was dropped. Never
    the recall table's own index. Busy, without waiting, while a build holds the copy."""
    if not place.is_copy:
        raise ValueError(f"{place.index} is the recall table's own index: it is not dropped here")
    ensure_tables(db)
    dropped = []
    with db.transaction() as conn:
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (place.table,)
        ).fetchone()
        if not (got and got[0]):
            raise Busy(f"{place.table} is being built right now: drop it once that is done.")
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(place.index)))
        conn.execute("DELETE FROM tuning_indexes WHERE index_name = %s", (place.index,))
        dropped.append(place.index)
        others = conn.execute(
            "SELECT count(*) FROM tuning_indexes WHERE table_name = %s", (place.table,)
        ).fetchone()
        if not (others and others[0]):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(place.table)))
            conn.execute("DELETE FROM tuning_copies WHERE table_name = %s", (place.table,))
            dropped.append(place.table)
    return dropped
