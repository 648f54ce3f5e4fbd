"""The configurations the Index tuning page compares, where each lives, and the query each runs.

Four kinds, all cosine, on the recall tables' `embedding vector(d)`: `hnsw` (m,
ef_construction), `ivfflat` (lists), `halfvec` (HNSW on `embedding::halfvec(d)`) and `binary`
(HNSW on `binary_quantize(embedding)::bit(d)` with `bit_hamming_ops`, queried for
k × oversample candidates that the full vectors then re-rank by cosine distance).

The rule: given two indexes on the same expression and operator class, the planner picks one
by its own estimate, so configurations are kept apart by table and every measurement checks
the index its plan names. A size's recall table (lib/dataset/recall_tables.py) keeps the index
it has; every other plain configuration has a copy of its rows, `tune_n{N}_d{d}_{key}`, with
that one index; both quantized ones share `tune_n{N}_d{d}_quantized`, as their expressions
differ. A copy holds the same ids and vectors (so the recall table's stored ground truth,
lib/harness/truths.py, is its too) and is made again when its source is reloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from psycopg import sql

from lib.core.operators import COSINE, HAMMING
from lib.core.psql import Statement, ident
from lib.dataset.index_specs import IndexSpec, default_lists, index_name
from lib.dataset.recall_tables import table_name

KINDS = ("hnsw", "ivfflat", "halfvec", "binary")
QUANTIZED = ("halfvec", "binary")
EF_SEARCH_VALUES = (10, 20, 40, 60, 100, 150, 200, 400, 700, 1000)
OVERSAMPLE_CHOICES = (1, 2, 4, 8, 16, 32)
DEFAULT_OVERSAMPLE = 4


@dataclass(frozen=True)
class Config:
    """One index configuration: its kind and its build parameters."""

    kind: str = "hnsw"
    m: int = 16
    ef_construction: int = 64
    lists: int = 0  # ivfflat; 0 means pgvector's advice for the table's size

    @classmethod
    def of_spec(cls, spec: IndexSpec) -> Config:
        return cls(spec.kind, spec.m, spec.ef_construction, spec.lists)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Config:
        return cls(**{k: data[k] for k in ("kind", "m", "ef_construction", "lists") if k in data})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def resolved(self, n: int) -> Config:
        """The configuration with defaults filled in for a table of `n` rows, and the
        parameters its kind does not use set to their defaults (so that equal means equal)."""
        if self.kind == "ivfflat":
            return Config("ivfflat", lists=self.lists or default_lists(n))
        return Config(self.kind, self.m, self.ef_construction)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown configuration kind {self.kind!r}")
        IndexSpec("ivfflat" if self.kind == "ivfflat" else "hnsw", self.m, self.ef_construction,
                  self.lists).check()  # fmt: skip

    @property
    def quantized(self) -> bool:
        return self.kind in QUANTIZED

    @property
    def method(self) -> str:
        """The index access method: hnsw or ivfflat."""
        return "ivfflat" if self.kind == "ivfflat" else "hnsw"

    def spec(self) -> IndexSpec | None:
        """The recall tables' IndexSpec of a plain configuration (None when quantized)."""
        if self.quantized:
            return None
        return IndexSpec(self.kind, self.m, self.ef_construction, self.lists)

    @property
    def knob(self) -> str:
        """The query-time setting the frontier sweeps."""
        return "ivfflat.probes" if self.kind == "ivfflat" else "hnsw.ef_search"

    def key(self) -> str:
        """A short name for table and index names: hnsw_m16_efc64, ivfflat_l100, …"""
        if self.kind == "ivfflat":
            return f"ivfflat_l{self.lists}"
        return f"{self.kind}_m{self.m}_efc{self.ef_construction}"

    def label(self) -> str:
        if self.kind == "ivfflat":
            return f"IVFFlat lists={self.lists}"
        graph = f"m={self.m} ef_construction={self.ef_construction}"
        if self.kind == "halfvec":
            return f"halfvec HNSW {graph}"
        if self.kind == "binary":
            return f"binary HNSW {graph} + re-rank"
        return f"HNSW {graph}"

    def short_label(self) -> str:
        """For a button: HNSW 32/128, IVFFlat 100 lists, halfvec 16/64, binary 16/64."""
        if self.kind == "ivfflat":
            return f"IVFFlat {self.lists} lists"
        name = "HNSW" if self.kind == "hnsw" else self.kind
        return f"{name} m={self.m}, efc={self.ef_construction}"

    def sweep_values(self) -> tuple[int, ...]:
        """About ten values of the knob, from cheap to thorough."""
        if self.kind == "ivfflat":
            return probes_values(self.lists)
        return EF_SEARCH_VALUES


def probes_values(lists: int, count: int = 10) -> tuple[int, ...]:
    """Up to `count` values of ivfflat.probes, spaced geometrically from 1 to a quarter of the
    lists (at least 10, at most all of them): past that, recall is 1 or near it here, and a
    probe of every list costs an exact scan's time at every query (0.65 s at 500k rows)."""
    top = min(lists, max(10, lists // 4))
    values = np.unique(np.round(np.geomspace(1, max(1, top), count)).astype(int))
    return tuple(int(v) for v in values)


def parse_values(text: str) -> tuple[int, ...]:
    """`10,20,40` as a person types it (spaces and underscores allowed); a clear ValueError."""
    try:
        values = tuple(int(v.strip().replace("_", "")) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a list of whole numbers such as 10,20,40") from None
    if not values or min(values) < 1:
        raise ValueError("give at least one value, each 1 or more")
    return values


# ---------------------------------------------------------------------------------------
# Where a configuration lives


def copy_table(n: int, dimension: int, config: Config) -> str:
    """The table holding a configuration that is not the recall table's own index."""
    if config.quantized:
        return f"tune_n{n}_d{dimension}_quantized"
    return f"tune_n{n}_d{dimension}_{config.key()}"


def copy_index(table: str, config: Config) -> str:
    if config.quantized:
        return f"{table}_{config.key()}"
    return f"{table}_idx"


@dataclass(frozen=True)
class Placement:
    """Where one configuration's index is, and how its queries read it."""

    config: Config
    table: str
    index: str
    source: str  # the recall table whose rows it holds (itself, for the recall table)
    dimension: int

    @property
    def is_copy(self) -> bool:
        return self.table != self.source

    def query(self, oversample: int = DEFAULT_OVERSAMPLE) -> ConfigQuery:
        return ConfigQuery(self.table, self.config, self.dimension, oversample)


def placement(config: Config, n: int, dimension: int, base_spec: IndexSpec | None) -> Placement:
    """Where `config` (resolved for n rows) lives: the recall table when it is that table's
    current index, else its copy."""
    base = table_name(n, dimension)
    spec = config.spec()
    if spec is not None and base_spec is not None and spec == base_spec.resolved(n):
        return Placement(config, base, index_name(base, spec), base, dimension)
    table = copy_table(n, dimension, config)
    return Placement(config, table, copy_index(table, config), base, dimension)


# ---------------------------------------------------------------------------------------
# The statements: the copy, the index, the query


def copy_statements(table: str, source: str) -> list[Statement]:
    """The statements that make `table` a copy of `source`'s rows (run and shown as is)."""
    t, s = ident(table), ident(source)
    return [
        Statement.of(sql.SQL("CREATE TABLE {} (LIKE {})").format(t, s)),
        Statement.of(
            sql.SQL("INSERT INTO {} (id, embedding)\n    SELECT id, embedding FROM {}").format(t, s)
        ),  # fmt: skip
        Statement.of(sql.SQL("ANALYZE {}").format(t)),
    ]


def indexed_expression(config: Config, dimension: int) -> sql.Composable:
    """What the index stores: the column, or the expression quantizing it."""
    if config.kind == "halfvec":
        return sql.SQL("(embedding::halfvec({}))").format(sql.Literal(dimension))
    if config.kind == "binary":
        return sql.SQL("(binary_quantize(embedding)::bit({}))").format(sql.Literal(dimension))
    return sql.SQL("embedding")


def opclass(config: Config) -> str:
    if config.kind == "halfvec":
        return COSINE.opclass_for("halfvec")
    if config.kind == "binary":
        return HAMMING.opclass_for("bit")
    return COSINE.opclass


def index_statement(place: Placement) -> Statement:
    """The CREATE INDEX that builds a configuration where it lives."""
    config = place.config
    if config.kind == "ivfflat":
        params = {"lists": config.lists}
    else:
        params = {"m": config.m, "ef_construction": config.ef_construction}
    with_ = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.SQL(k), sql.Literal(v)) for k, v in params.items()
    )
    return Statement.of(
        sql.SQL("CREATE INDEX {name} ON {table}\n    USING {method} ({expr} {opclass}) WITH ({w})")
        .format(
            name=ident(place.index), table=ident(place.table), method=sql.SQL(config.method),
            expr=indexed_expression(config, place.dimension), opclass=sql.SQL(opclass(config)),
            w=with_,
        )
    )  # fmt: skip


@dataclass(frozen=True)
class ConfigQuery:
    """The k-nearest query a configuration answers, in the harness's shape (lib/harness/recall.py's
    `Target`: `query()` with $1 the query vector and $2 k, `bind`, `statement`)."""

    table: str
    config: Config
    dimension: int
    oversample: int = DEFAULT_OVERSAMPLE
    key: str = "id"

    @property
    def qualified(self) -> str:
        return self.table

    def candidates(self, k: int) -> int:
        """How many rows the binary index is asked for before the re-rank."""
        return k * self.oversample

    def query(self, *, with_distance: bool = False) -> sql.Composed:
        t, d = ident(self.table), sql.Literal(self.dimension)
        cos = sql.SQL(COSINE.operator)
        if self.config.kind == "halfvec":
            order = sql.SQL("embedding::halfvec({d}) {op} $1::halfvec({d})").format(d=d, op=cos)
        else:
            order = sql.SQL("embedding {} $1").format(cos)
        distance = sql.SQL(", {} AS distance").format(order) if with_distance else sql.SQL("")
        if self.config.kind != "binary":
            return sql.SQL("SELECT id{distance}\nFROM {t}\nORDER BY {order}\nLIMIT $2").format(
                distance=distance, t=t, order=order
            )
        hamming = sql.SQL(
            "binary_quantize(embedding)::bit({d}) {op} binary_quantize($1::vector({d}))"
        ).format(d=d, op=sql.SQL(HAMMING.operator))
        return sql.SQL(
            "SELECT id{distance}\nFROM (\n    SELECT id, embedding\n    FROM {t}\n"
            "    ORDER BY {hamming}\n    LIMIT $3\n) AS candidates\nORDER BY {order}\nLIMIT $2"
        ).format(distance=distance, t=t, hamming=hamming, order=order)

    def bind(self, query: np.ndarray, k: int) -> tuple[Any, ...]:
        if self.config.kind == "binary":
            return (query, k, self.candidates(k))
        return (query, k)

    def statement(
        self, query: np.ndarray, k: int = 10, *, with_distance: bool = False, explain: bool = False
    ) -> Statement:
        """The query with one query vector bound (EXPLAIN (ANALYZE, BUFFERS)'d with `explain`)."""
        q = np.asarray(query, dtype=np.float32)
        names = ["the query vector", "k"]
        if self.config.kind == "binary":
            names.append(f"candidates (k × {self.oversample})")
        text = self.query(with_distance=with_distance)
        if explain:
            text = sql.SQL("EXPLAIN (ANALYZE, BUFFERS)\n") + text
        return Statement.of(text, *self.bind(q, int(k)), names=names)


# Configurations the page offers to pin in one click (lists=0: pgvector's advice for the size).
PRESETS: tuple[Config, ...] = (
    Config("hnsw", 32, 128),
    Config("hnsw", 8, 32),
    Config("ivfflat"),
    Config("halfvec"),
    Config("binary"),
)
