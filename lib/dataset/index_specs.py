"""Which vector index a recall table gets: HNSW (m, ef_construction) or IVFFlat (lists),
its name, and the CREATE INDEX statement that builds it (run and shown from one source)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psycopg import sql

from lib.core.psql import Statement, ident


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
