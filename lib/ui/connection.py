"""The shared database for every page, and the check each page makes before it uses it: the
server answers, and this user may create the lab's tables in its schema, pgvector_lab (else
one clear message with the fix, and the page stops). Progress displays that read the
database every second use `progress_fragment`, which shows a server that is away or busy as
a plain message."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
from psycopg import sql

from lib.core import data_directory
from lib.core.database import (
    CREATE_EXTENSION,
    UPDATE_EXTENSION,
    Database,
    DatabaseBusy,
    DatabaseUnavailable,
    DataDirectoryMismatch,
    ExtensionMissing,
    manage_extension,
    open_database,
)
from lib.core.lab_schema import LAB_SCHEMA
from lib.ui import room
from lib.ui.text import plain


@st.cache_resource(show_spinner="Starting PostgreSQL…")
def _open_database(url: str | None) -> Database:
    return open_database(url)


def shared_database() -> Database:
    """The shared Database of this process (its pool), unchecked."""
    return _open_database(os.environ.get("DATABASE_URL") or None)


def database(*, creates_tables: bool = True) -> Database:
    """The shared Database, answering now (one pooled round trip); otherwise one clear message
    with the fix, and the page stops. The app reconnects by itself when the server is back.
    A page that `creates_tables` (every page but the home page) also stops, with the GRANT
    that fixes it, when this user may not create tables where the lab keeps them."""
    try:
        db = shared_database()
        db.check()
        if creates_tables:
            _require_create(db)
        return db
    except DatabaseUnavailable as e:
        show_unavailable(e)
        if isinstance(e, ExtensionMissing):
            offer_extension("create")
        if isinstance(e, DataDirectoryMismatch):
            st.button(
                f"Move {e.pgdata.name} aside and start an empty PostgreSQL {e.bundled}",
                on_click=_move_data_directory_aside,
                args=(e.pgdata, e.bundled),
                icon=":material/drive_file_move:",
                help="Renames the directory (nothing is deleted); the lab rebuilds its tables.",
            )
        st.stop()


def show_unavailable(e: DatabaseUnavailable, *, compact: bool = False) -> None:
    """Say that the server is away (or busy: SQLSTATE 53300, a full pool), as plain text, with
    the fix; `compact` for a place that tries again by itself (a progress display)."""
    if isinstance(e, DatabaseBusy):
        st.warning(f"**{e.HEADLINE}** {plain(e.detail)}", icon=":material/hourglass_top:")
    else:
        st.error(f"**PostgreSQL is not available.** {plain(e.problem)}", icon=":material/error:")
    if compact:
        st.caption("This display tries again every second; the work itself goes on in the queue.")
    else:
        st.info(f"**How to fix:** {e.fix}")


def offer_extension(action: str, where: str = "page") -> None:
    """The button that asks, on a database the lab does not own, before it changes pgvector:
    `action` "create" (`CREATE EXTENSION vector`) or "update" (`ALTER EXTENSION vector
    UPDATE`); `where` "page" or "sidebar" (both may show it). In a room it is the
    instructor's; what the server says when it refuses is shown as text."""
    statement = CREATE_EXTENSION if action == "create" else UPDATE_EXTENSION
    label = "Create the extension" if action == "create" else "Update the extension"
    if not st.button(label, key=f"lab_extension_{action}_{where}", icon=":material/extension:",
                     help=f"Runs `{statement}` in this database, as the app's user."):  # fmt: skip
        return
    if not room.may(f"Changing this database's pgvector ({statement})"):
        return
    try:
        if action == "create":  # no Database opened without it: the next run opens one
            manage_extension(os.environ["DATABASE_URL"])
        else:
            db = shared_database()
            manage_extension(db.conninfo)
            db.forget_info()  # the sidebar reads the versions again
    except DatabaseUnavailable as e:
        st.error(f"**{statement} did not run.** {plain(e.problem)}", icon=":material/error:")
        st.info(f"**How to fix:** {e.fix}")
        return
    st.rerun()


def progress_fragment(run_every: float = 1.0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`st.fragment(run_every=...)` for a display that reads the database at every tick: a
    server that went away or is busy shows as one plain message (show_unavailable), not an
    exception box, and the next tick tries again."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except DatabaseUnavailable as e:
                show_unavailable(e, compact=True)
                return None

        return st.fragment(guarded, run_every=run_every)

    return wrap


@st.cache_data(ttl=10, show_spinner=False)
def _create_denied(conninfo: str) -> tuple[str, str] | None:
    """None when this user may create tables in the lab's schema (LAB_SCHEMA); else the
    problem and the statement that fixes it. Asked again after ten seconds; a denial is not
    kept (`_require_create`)."""
    db = shared_database()
    with db.connection() as conn:
        user, database_name, exists, allowed = conn.execute(
            "SELECT current_user, current_database(), to_regnamespace(%s) IS NOT NULL,"
            " coalesce(has_schema_privilege(to_regnamespace(%s), 'CREATE'), false)",
            (LAB_SCHEMA, LAB_SCHEMA),
        ).fetchone()
        if allowed:
            return None
        if not exists:
            problem = (
                f"The lab keeps its tables in the schema {LAB_SCHEMA}, which database "
                f"{database_name} does not have, and user {user} may not create it."
            )
            fix = sql.SQL("CREATE SCHEMA {} AUTHORIZATION {};").format(
                sql.Identifier(LAB_SCHEMA), sql.Identifier(user)
            )
        else:
            problem = (
                f"User {user} may not create tables in schema {LAB_SCHEMA} of database "
                f"{database_name}, and the lab keeps its tables there (each model's corpus, "
                "the recall tables, their jobs)."
            )
            fix = sql.SQL("GRANT CREATE ON SCHEMA {} TO {};").format(
                sql.Identifier(LAB_SCHEMA), sql.Identifier(user)
            )
        return problem, fix.as_string(conn)


def _require_create(db: Database) -> None:
    denied = _create_denied(db.conninfo)
    if denied is None:
        return
    _create_denied.clear()  # asked again at the next click: the message says "click again"
    problem, fix = denied
    st.error("**This database user may not create tables.**", icon=":material/lock:")
    st.text(problem)  # names from the server, shown as text
    st.info(
        "**How to fix:** run this as the database's owner (or a superuser), then click again; "
        "or point `DATABASE_URL` at a database this user owns; or unset `DATABASE_URL` to use "
        "the embedded server."
    )
    st.code(fix, language="sql")
    st.stop()


def _move_data_directory_aside(pgdata: Path, bundled: int) -> None:
    moved = data_directory.move_aside(pgdata, expected=bundled)
    if moved is not None:
        st.toast(f"Moved to {moved}", icon=":material/drive_file_move:")
