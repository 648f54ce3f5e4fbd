"""Why isn't my index used? Six query shapes behind most "index not used" reports in pgvector's
issue tracker, each run with `EXPLAIN (ANALYZE, BUFFERS)` against the lab's tables next to its
fix, so that the plan, not a sentence, shows what happened.

Each case names the table it runs on:

- `table`: the chosen size's recall table, whose index is HNSW or IVFFlat with
  `vector_cosine_ops` on `embedding`;
- `quantized`: that size's copy holding the halfvec expression index (index_configs.py);
- `small`: the 500-row recall table, where a scan is cheaper than any index.

The statements are `lib.core.psql.Statement`s with the query vector bound to `$1`: the page
shows each as it ran, and pasted into psql it gives the same plan shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from lib.core.database import Database, Setting
from lib.core.operators import COSINE, L2
from lib.core.psql import Script, Statement, run, shorten_vectors

SMALL_ROWS = 500
THRESHOLD = 0.5  # a cosine distance: rows with similarity above 0.5


@dataclass(frozen=True)
class Case:
    """One query shape that misses the index, and the shape that does not."""

    key: str
    title: str
    table: str  # which table: "table", "quantized" or "small"
    bad: str  # SQL with {t} for the table, {d} for the dimension, $1 the query vector
    fix: str
    wrong: str  # what went wrong, in a sentence or two
    remedy: str  # the fix, in words
    fix_settings: dict[str, Setting] = field(default_factory=dict)
    planner_right: bool = False  # the "bad" plan is the right one (nothing to fix)


CASES: tuple[Case, ...] = (
    Case(
        "similarity_desc",
        "ORDER BY 1 - (embedding <=> q) DESC",
        "table",
        "SELECT id, 1 - (embedding <=> $1) AS similarity\nFROM {t}\n"
        "ORDER BY 1 - (embedding <=> $1) DESC\nLIMIT 10",
        "SELECT id, 1 - (embedding <=> $1) AS similarity\nFROM {t}\n"
        "ORDER BY embedding <=> $1\nLIMIT 10",
        "An index scan can only hand out rows in ascending order of its operator: "
        "`ORDER BY embedding <=> q`. Sorting by an expression of it, even one that gives the "
        "same order, is a different sort key, so PostgreSQL computes the distance for every "
        "row and sorts.",
        "Order by the distance itself, ascending, and compute the similarity in the SELECT list.",
    ),
    Case(
        "no_limit",
        "no LIMIT",
        "table",
        "SELECT id\nFROM {t}\nORDER BY embedding <=> $1",
        "SELECT id\nFROM {t}\nORDER BY embedding <=> $1\nLIMIT 10",
        "pgvector's indexes answer `ORDER BY … LIMIT k`: they find the k nearest, not a full "
        "ranking. Without LIMIT the planner has to rank every row, and a sequential scan "
        "with a sort is the only plan that does.",
        "Say how many you want: `LIMIT 10`.",
    ),
    Case(
        "operator",
        "an operator the index's opclass doesn't serve",
        "table",
        f"SELECT id\nFROM {{t}}\nORDER BY embedding {L2.operator} $1\nLIMIT 10",
        f"SELECT id\nFROM {{t}}\nORDER BY embedding {COSINE.operator} $1\nLIMIT 10",
        f"The index was built with `{COSINE.opclass}`, which serves `{COSINE.operator}` only. "
        f"`{L2.operator}` (L2) would need an index with `{L2.opclass}`, so the query scans "
        "the table.",
        f"Query with the operator the index was built for (`{COSINE.operator}`), or build an "
        f"index with the opclass of the operator you use. (On normalized vectors such as "
        f"these, `{COSINE.operator}` and `{L2.operator}` rank rows the same way.)",
    ),
    Case(
        "expression",
        "an expression index the query doesn't match (::halfvec missing)",
        "quantized",
        "SELECT id\nFROM {t}\nORDER BY embedding <=> $1\nLIMIT 10",
        "SELECT id\nFROM {t}\nORDER BY embedding::halfvec({d}) <=> $1::halfvec({d})\nLIMIT 10",
        "This table's index is on the expression `(embedding::halfvec({d}))` with "
        "`halfvec_cosine_ops`. The planner uses an expression index only for a query on that "
        "same expression; `ORDER BY embedding <=> q` orders by the column, which no index "
        "here covers.",
        "Write the index's expression in the query, cast and dimension included: "
        "`ORDER BY embedding::halfvec({d}) <=> q::halfvec({d})`.",
    ),
    Case(
        "threshold",
        "a distance threshold in WHERE, with no ORDER BY … LIMIT",
        "table",
        f"SELECT id\nFROM {{t}}\nWHERE embedding <=> $1 < {THRESHOLD}",
        f"SELECT id\nFROM {{t}}\nWHERE embedding <=> $1 < {THRESHOLD}\n"
        "ORDER BY embedding <=> $1\nLIMIT 10",
        'HNSW and IVFFlat indexes do not search by range: they answer "the k nearest", not '
        '"everything closer than 0.5". A threshold alone is a filter, checked on every row.',
        "Ask for the nearest with `ORDER BY embedding <=> q LIMIT k` and keep the threshold "
        "as a filter on them, as pgvector's README shows.",
    ),
    Case(
        "small_table",
        "a table small enough that the planner prefers a scan",
        "small",
        "SELECT id\nFROM {t}\nORDER BY embedding <=> $1\nLIMIT 10",
        "SELECT id\nFROM {t}\nORDER BY embedding <=> $1\nLIMIT 10",
        f"Nothing went wrong. With {SMALL_ROWS} rows, reading them all and sorting costs less "
        "than an index scan, by the planner's estimate, and the answer is exact.",
        "Nothing to fix. To see the index answer anyway (to test it, as the recall harness "
        "does), turn sequential scans off for one transaction.",
        fix_settings={"enable_seqscan": "off"},
        planner_right=True,
    ),
)
BY_KEY = {c.key: c for c in CASES}

_INDEX_NODE = re.compile(r"(?:Index Scan|Index Only Scan) using (\S+)|Bitmap Index Scan on (\S+)")


def indexes_in(plan: list[str]) -> list[str]:
    """The indexes a text plan reads, in order."""
    out = []
    for line in plan:
        m = _INDEX_NODE.search(line)
        if m:
            out.append(m.group(1) or m.group(2))
    return out


@dataclass(frozen=True)
class Side:
    """One statement of a case as it ran: the script and its plan."""

    script: Script
    plan: list[str]

    @property
    def indexes(self) -> list[str]:
        return indexes_in(self.plan)

    def plan_text(self) -> str:
        return shorten_vectors("\n".join(self.plan))


@dataclass(frozen=True)
class CaseRun:
    case: Case
    table: str
    bad: Side
    fix: Side


def statement(sql_text: str, table: str, dimension: int, query: np.ndarray) -> Statement:
    text = "EXPLAIN (ANALYZE, BUFFERS)\n" + sql_text.format(t=table, d=dimension)
    return Statement.of(text, np.asarray(query, dtype=np.float32), names=("the query vector",))


STATEMENT_TIMEOUT = "20s"  # each EXPLAIN ANALYZE of a case; a bad plan at 500,000 rows takes ~1 s


def run_case(db: Database, case: Case, table: str, dimension: int, query: np.ndarray) -> CaseRun:
    """The case's bad and fixed statements, each EXPLAIN (ANALYZE, BUFFERS)'d on `table`."""
    sides = []
    for sql_text, settings in ((case.bad, {}), (case.fix, case.fix_settings)):
        limited = {"statement_timeout": STATEMENT_TIMEOUT, **settings}  # a click, not a build
        script = run(db, [statement(sql_text, table, dimension, query)], limited)
        sides.append(Side(script, [r[0] for r in script.rows]))
    return CaseRun(case, table, *sides)


def words(text: str, dimension: int) -> str:
    """A case's sentence with the dimension filled in."""
    return text.replace("{d}", str(dimension))
