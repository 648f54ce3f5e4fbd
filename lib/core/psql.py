"""SQL that runs and SQL that is shown, from one source: the text psql would send.

A `Statement` is SQL text with PostgreSQL's own placeholders ($1, $2, …) and the values
bound to them. That text is what the server receives (psycopg's `RawCursor` sends $n
placeholders as they are) and what the page shows, where a statement with values ends in
psql's `\\bind … \\g` line (psql 16 or later) instead of a semicolon:

    BEGIN;
    SET LOCAL enable_indexscan = off;
    SELECT id, embedding <=> $1 AS distance
    FROM items
    ORDER BY embedding <=> $1
    LIMIT $2
    \\bind '[0.0123,-0.0456,…]' 5 \\g
    COMMIT;

`run` executes statements in one transaction, after the `SET LOCAL` lines it shows, and
returns a `Script`: the statements, the settings and what each statement returned. Pasted
into psql, `Script.text()` gives the same rows (tests/test_sql_blocks.py does exactly that).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from lib.core.database import Database, Setting

# Words PostgreSQL reserves in some position (pg_get_keywords() with catcode <> 'U'): a table
# or column named like one must be quoted.
_KEYWORDS = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization between bigint binary
    bit boolean both case cast char character check coalesce collate collation column
    concurrently constraint create cross current_catalog current_date current_role
    current_schema current_time current_timestamp current_user dec decimal default deferrable
    desc distinct do else end except exists extract false fetch float for foreign freeze from
    full grant greatest group grouping having ilike in initially inner inout int integer
    intersect interval into is isnull join json json_array json_arrayagg json_exists
    json_object json_objectagg json_query json_scalar json_serialize json_table json_value
    lateral leading least left like limit localtime localtimestamp merge_action national
    natural nchar none normalize not notnull null nullif numeric offset on only or order out
    outer overlaps overlay placing position precision primary real references returning right
    row select session_user setof similar smallint some substring symmetric system_user table
    tablesample then time timestamp to trailing treat trim true union unique user using values
    varchar variadic verbose when where window with xmlattributes xmlconcat xmlelement
    xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable""".split()
)
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SETTING_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


def ident(*names: str) -> sql.Composable:
    """A (possibly schema-qualified) name as a learner would type it: quoted only if needed."""
    parts = [
        sql.SQL(n) if _PLAIN_NAME.fullmatch(n) and n not in _KEYWORDS else sql.Identifier(n)
        for n in names
    ]
    return sql.SQL(".").join(parts)


def vector_literal(vector: Sequence[float] | np.ndarray) -> str:
    """pgvector's text form of a vector, each float32 written in its shortest exact form."""
    return _vector_literal(np.asarray(vector, dtype=np.float32).reshape(-1).tobytes())


@functools.lru_cache(maxsize=1024)
def _vector_literal(data: bytes) -> str:
    # A page shows the same query vector on every rerun: written out once, not per click.
    values = np.frombuffer(data, dtype=np.float32)
    return (
        "[" + ",".join(np.format_float_positional(x, unique=True, trim="-") for x in values) + "]"
    )


def value_text(value: Any) -> str:
    """A parameter in PostgreSQL's text input form (what psql sends for it)."""
    if isinstance(value, np.ndarray):
        return vector_literal(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ValueError(f"cannot show {value!r} as a parameter")
        return repr(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "{" + ",".join(_array_element(v) for v in value) + "}"
    raise TypeError(f"no text form for a parameter of type {type(value).__name__}")


def _array_element(value: Any) -> str:
    text = value_text(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bind_argument(value: Any) -> str:
    """One argument of psql's \\bind: numbers bare, anything else single-quoted."""
    text = value_text(value)
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def setting_line(name: str, value: Setting) -> str:
    """`SET LOCAL name = value;` — a word bare, anything else as a quoted literal."""
    if not _SETTING_NAME.fullmatch(name):
        raise ValueError(f"not a setting name: {name!r}")
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, int | float):
        text = str(value)
    elif _PLAIN_NAME.fullmatch(str(value)):
        text = str(value)
    else:
        text = sql.Literal(str(value)).as_string()
    return f"SET LOCAL {name} = {text};"


@dataclass(frozen=True)
class Statement:
    """SQL text with $1, $2, … placeholders, the values bound to them, and what they are."""

    text: str
    params: tuple[Any, ...] = ()
    names: tuple[str, ...] = ()  # what each parameter is, for the caption under the code
    comment: str = ""  # shown as `-- comment` above the statement

    @classmethod
    def of(
        cls, query: sql.Composable | str, *params: Any, names: Sequence[str] = (), comment: str = ""
    ) -> Statement:
        text = query if isinstance(query, str) else query.as_string()
        return cls(text.strip(), tuple(params), tuple(names), comment)

    def psql(self) -> str:
        """The statement as typed into psql: `;` or, with parameters, `\\bind … \\g`."""
        lines = [f"-- {line}" for line in self.comment.splitlines()]
        if self.params:
            args = " ".join(bind_argument(p) for p in self.params)
            lines += [self.text, f"\\bind {args} \\g"]
        else:
            lines.append(self.text + ";")
        return "\n".join(lines)


@dataclass(frozen=True)
class Result:
    """What one statement returned: column names and rows (empty for a command)."""

    columns: tuple[str, ...]
    rows: list[tuple]


@dataclass(frozen=True)
class Script:
    """Statements that ran in one transaction under `SET LOCAL` settings, and their results."""

    statements: tuple[Statement, ...]
    settings: Mapping[str, Setting] = field(default_factory=dict)
    results: tuple[Result | None, ...] = ()  # per statement; None when it returned no rows
    error: str | None = None  # what the server said when a statement failed (primary message)
    sqlstate: str | None = None
    settings_comment: str = ""

    def text(self) -> str:
        """The whole script as a learner pastes it into psql."""
        head = [f"-- {line}" for line in self.settings_comment.splitlines()]
        head += [setting_line(k, v) for k, v in self.settings.items()]
        body = "\n\n".join(s.psql() for s in self.statements)
        return "BEGIN;\n" + "".join(h + "\n" for h in head) + body + "\nCOMMIT;"

    @property
    def rows(self) -> list[tuple]:
        """The rows of the last statement that returned any."""
        return next((r.rows for r in reversed(self.results) if r is not None), [])

    def parameters(self) -> list[tuple[str, Any]]:
        """(what it is, value) of every named parameter, each name once, in order."""
        seen: dict[str, Any] = {}
        for s in self.statements:
            for name, value in zip(s.names, s.params, strict=False):
                seen.setdefault(name, value)
        return list(seen.items())


def run(
    db: Database,
    statements: Sequence[Statement],
    settings: Mapping[str, Setting] | None = None,
    *,
    settings_comment: str = "",
    keep_error: bool = False,
) -> Script:
    """Run `statements` in one transaction after the `SET LOCAL` lines `Script.text` shows.

    With `keep_error`, a failing statement ends the transaction and its error is returned in
    the Script (a page that shows Postgres refusing something); otherwise it is raised."""
    script = Script(tuple(statements), dict(settings or {}), settings_comment=settings_comment)
    results: list[Result | None] = []
    try:
        with db.transaction() as conn:
            cur = psycopg.RawCursor(conn)
            if script.settings:  # the SET LOCAL lines as shown, sent together: one round trip
                lines = "\n".join(setting_line(n, v) for n, v in script.settings.items())
                cur.execute(lines, prepare=False)
            for s in script.statements:
                cur.execute(s.text, s.params or None, prepare=False)
                if cur.description is None:
                    results.append(None)
                else:
                    columns = tuple(c.name for c in cur.description)
                    results.append(Result(columns, cur.fetchall()))
    except psycopg.Error as e:
        if not keep_error:
            raise
        message = e.diag.message_primary or str(e).strip()
        return replace(script, results=tuple(results), error=message, sqlstate=e.sqlstate)
    return replace(script, results=tuple(results))


def short_value(value: Any) -> str:
    """A parameter for a caption: a long vector by its size and first numbers."""
    if isinstance(value, np.ndarray) and value.size > 8:
        head = ", ".join(f"{x:.3f}" for x in value.ravel()[:3])
        return f"vector({value.size}) [{head}, …]"
    text = value_text(value)
    return text if len(text) <= 80 else text[:77] + "…"


def shorten_vectors(text: str) -> str:
    """Replace long vector literals in a plan with their first values and their length."""

    def short(match: re.Match) -> str:
        values = match.group(1).split(",")
        return f"'[{','.join(values[:2])},… {len(values)} values]'::vector"

    return re.sub(r"'\[([^\]]{40,})\]'::vector", short, text)
