"""Where the lab keeps its tables: the schema `pgvector_lab`, on the embedded server and on any
DATABASE_URL, so that the lab never mixes its tables with a user's own in `public`.

Every connection the lab opens (its pool, its job queue's locks, psql for a learner) carries
`options=-c search_path=pgvector_lab,<the server's path>`: the lab's SQL names its tables
unqualified, as a learner would type them, and they resolve to the lab's schema first; the
extension's types and a user's own tables resolve from the server's usual path after it.
`make psql` opens psql with the same path, so a statement pasted from a page finds the
same tables.

A server that had the lab's tables in `public` (before this schema) has them moved once, in
one transaction: the relations whose names start with one of the lab's prefixes, found by
the lab's own job table `public.lab_jobs` being there.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

LAB_SCHEMA = "pgvector_lab"
# the names the lab gives its tables; only these move out of `public`
LAB_PREFIXES = (
    "lab_", "recall_", "tune_", "tuning_", "filtered_", "evals_", "reembed_", "drift_",
    "corpus_",
)  # fmt: skip


def search_path(conn: psycopg.Connection) -> str:
    """The lab's schema, then the search_path this connection was given (the server's, the
    role's or the URL's own, as set: schemas that do not exist yet count when they do)."""
    (current,) = conn.execute("SELECT current_setting('search_path')").fetchone()
    rest = [p.strip() for p in current.split(",") if p.strip()]
    return ", ".join([LAB_SCHEMA, *(p for p in rest if p not in (LAB_SCHEMA, f'"{LAB_SCHEMA}"'))])


def path_option(path: str) -> str:
    """`-c search_path=…` for libpq's `options` (a space inside a value is escaped)."""
    return "-c search_path=" + path.replace("\\", "\\\\").replace(" ", "\\ ")


def with_path(conninfo: str, path: str) -> str:
    """`conninfo` whose connections start with `path` as their search_path (after any
    `options` it had: the last -c of a setting wins)."""
    options = conninfo_to_dict(conninfo).get("options") or ""
    return make_conninfo(conninfo, options=f"{options} {path_option(path)}".strip())


def lab_conninfo(conninfo: str) -> str:
    """`conninfo` with the lab's search_path, as the app's own connections have it (one
    connection to read the server's path)."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        return with_path(conninfo, search_path(conn))


def create_schema(conn: psycopg.Connection) -> bool:
    """Create the lab's schema if it is missing; False if this user may not (the pages then
    say which statement fixes it). Moves the lab's tables out of `public` the first time."""
    conn.execute("SELECT pg_advisory_lock(hashtext('pgvector_lab schema'))")
    try:
        found = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (LAB_SCHEMA,)
        ).fetchone()
        if found is None:
            try:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(LAB_SCHEMA)))
            except psycopg.errors.InsufficientPrivilege:
                return False
        move_from_public(conn)
        return True
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext('pgvector_lab schema'))")


def lab_relations_in_public(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(name, relkind) of the lab's relations left in `public` by an earlier version (this
    user's, named with a lab prefix): none unless the lab's job table is there and not yet in
    the lab's schema."""
    if conn.execute(
        "SELECT to_regclass('public.lab_jobs') IS NULL OR to_regclass(%s) IS NOT NULL",
        (f"{LAB_SCHEMA}.lab_jobs",),
    ).fetchone()[0]:
        return []
    return conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')"
        " AND c.relname ~ %s AND c.relowner = current_user::regrole"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "   AND d.objid = c.oid AND d.deptype = 'e')"
        " AND NOT c.relispartition ORDER BY c.relname",
        ("^(" + "|".join(LAB_PREFIXES) + ")",),
    ).fetchall()


_ALTER = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


def move_from_public(conn: psycopg.Connection) -> int:
    """Move the lab's relations from `public` to the lab's schema in one transaction (their
    indexes, sequences and the views on them follow). The re-embedding lesson's stored runs
    and reports name their tables with the schema: those names are rewritten to where the
    tables now are, so that their statements paste into psql again. Returns how many
    moved."""
    relations = lab_relations_in_public(conn)
    if not relations:
        return 0
    with conn.transaction():
        for name, kind in relations:
            conn.execute(
                sql.SQL("ALTER {} public.{} SET SCHEMA {}").format(
                    sql.SQL(_ALTER[kind]), sql.Identifier(name), sql.Identifier(LAB_SCHEMA)
                )
            )
        moved = {name for name, _ in relations}
        if "reembed_runs" in moved:
            conn.execute(
                sql.SQL(
                    "UPDATE {}.reembed_runs SET schema_name = %s"
                    " WHERE schema_name = 'public' AND table_name LIKE 'reembed\\_demo\\_%%'"
                ).format(sql.Identifier(LAB_SCHEMA)),
                (LAB_SCHEMA,),
            )
        if "reembed_lab_reports" in moved:  # its stored statements name the tables
            conn.execute(
                sql.SQL(
                    "UPDATE {}.reembed_lab_reports"
                    " SET report = replace(report::text, 'public.reembed_demo_', %s)::jsonb"
                    " WHERE report::text LIKE '%%public.reembed\\_demo\\_%%'"
                ).format(sql.Identifier(LAB_SCHEMA)),
                (f"{LAB_SCHEMA}.reembed_demo_",),
            )
    return len(relations)
