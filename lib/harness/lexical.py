"""The lexical rankers' SQL: full text ranked four ways, each a SELECT of (key, score) best
first, written with the placeholders its caller numbers (a system alone: $1 the query's text,
$2 the depth; inside a fusion, other numbers). The query's text is only ever a parameter.

- `fts`: `websearch_to_tsquery('english', $1)`, every word required, ranked by `ts_rank_cd`
  (cover density: no IDF, no length normalisation).
- `fts_or`: any word of the query: `plainto_tsquery`'s lexemes joined with `|` (the
  tsquery's own text form with ` & ` replaced, so the lexemes stay quoted as PostgreSQL
  quoted them), ranked by `ts_rank_cd`.
- `bm25`: Okapi BM25 computed by the query from the tsvectors. The rows holding any query
  lexeme (the GIN index, through the `fts_or` tsquery) are unnested to (lexeme, positions);
  tf is the number of positions, a row's length the sum of its lexemes' positions (the
  tokens the tsvector indexes, stop words excluded), IDF(t) = ln(1 + (N − df + 0.5) /
  (df + 0.5)) with df from the vocabulary table and N and avgdl from `recall_bm25_tables`
  (lib/dataset/bm25_tables.py, built once per text table), and score = Σ over the query's
  distinct lexemes of IDF·tf·(k1 + 1) / (tf + k1·(1 − b + b·length/avgdl)). k1 and b are
  parameters of the query.
- `bm25_sparse`: the same sum as an inner product in pgvector. Each row's term weights
  tf·(k1 + 1) / (tf + k1·(1 − b + b·length/avgdl)) were stored as a `sparsevec` over the
  vocabulary when the tables were built (so k1 and b are the build's); the query is a
  sparsevec holding IDF(t) at each of its lexemes' dimensions, and `weights <#> query`
  (minus the inner product) orders every row. Weights are float4, so its scores agree with
  `bm25`'s to about 1e-6 relative, not to the last digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from lib.core.psql import ident
from lib.dataset import text_tables
from lib.dataset.bm25_tables import K1, B, Bm25Table

TS_CONFIG = text_tables.TS_CONFIG
KINDS = ("fts", "fts_or", "bm25", "bm25_sparse")
LABELS = {
    "fts": "full text, every word (ts_rank_cd)",
    "fts_or": "full text, any word (ts_rank_cd)",
    "bm25": "BM25 in SQL",
    "bm25_sparse": "BM25 as sparsevec <#>",
}


@dataclass(frozen=True)
class TextSource:
    """Where full-text search reads: a table, its key, and a tsvector column or a text
    column (turned into one per row with to_tsvector('english', …))."""

    schema: str | None  # None: a table of the lab's (see lib.harness.recall.Target.name)
    table: str
    key: str
    column: str
    is_tsvector: bool

    def name(self) -> sql.Composable:
        return ident(self.table) if self.schema is None else ident(self.schema, self.table)

    def vector(self) -> sql.Composable:
        if self.is_tsvector:
            return ident(self.column)
        return sql.SQL("to_tsvector({}, {})").format(sql.Literal(TS_CONFIG), ident(self.column))


def lab_text_source(table: str) -> TextSource:
    """A size's text table (lib/dataset/text_tables.py): its generated tsvector."""
    return TextSource(None, table, "id", "body_tsv", True)


def any_word(text: str) -> str:
    """The tsquery matching any lexeme of the text in parameter `text` ($1, …)."""
    return f"CAST(replace(plainto_tsquery('{TS_CONFIG}', {text})::text, ' & ', ' | ') AS tsquery)"


def fts_select(
    source: TextSource, text: str, depth: str, *, any_of: bool = False, column: str = "rank"
) -> str:
    """Rows matching the query (every word, or `any_of` its words), best ts_rank_cd first,
    ties by key."""
    match = (
        sql.SQL(",\n     " + any_word(text))
        if any_of
        else sql.SQL(", websearch_to_tsquery({}, " + text + ")").format(sql.Literal(TS_CONFIG))
    )
    return (
        sql.SQL(
            "SELECT {key}, ts_rank_cd({tsv}, query) AS {col}\n"
            "FROM {table}{match} AS query\n"
            "WHERE {tsv} @@ query\n"
            "ORDER BY {col} DESC, {key}\n"
            "LIMIT " + depth
        )
        .format(
            key=ident(source.key),
            tsv=source.vector(),
            table=source.name(),
            match=match,
            col=sql.SQL(column),
        )  # fmt: skip
        .as_string()
    )


def _idf_terms(bm25: Bm25Table, text: str) -> str:
    """FROM … WHERE of the query's distinct lexemes in the vocabulary, with N and avgdl."""
    return (
        sql.SQL(
            "FROM recall_bm25_tables s\n"
            "    JOIN {terms} t\n"
            "      ON t.lexeme = ANY (tsvector_to_array(to_tsvector({cfg}, " + text + ")))\n"
            "    WHERE s.name = {name}"
        )
        .format(
            terms=ident(bm25.terms_table), cfg=sql.Literal(TS_CONFIG), name=sql.Literal(bm25.name)
        )  # fmt: skip
        .as_string()
    )


IDF = "ln(1 + (s.docs - t.df + 0.5) / (t.df + 0.5))"


def bm25_select(source: TextSource, bm25: Bm25Table, text: str, depth: str, k1: str, b: str) -> str:
    """BM25 computed from the tsvectors of the rows holding any query lexeme."""
    return (
        sql.SQL(
            "WITH terms AS (\n"
            "    SELECT t.lexeme, " + IDF + " AS idf, s.avgdl,\n"
            "           " + k1 + "::float8 AS k1, " + b + "::float8 AS b\n"
            "    " + _idf_terms(bm25, text) + "\n"
            "),\n"
            "matches AS (\n"
            "    SELECT {key}, {tsv}\n"
            "    FROM {table},\n"
            "         " + any_word(text) + " AS query\n"
            "    WHERE {tsv} @@ query\n"
            ")\n"
            "SELECT m.id,\n"
            "       sum(terms.idf * w.tf * (terms.k1 + 1)\n"
            "           / (w.tf + terms.k1 * (1 - terms.b + terms.b * l.length / terms.avgdl)))"
            " AS score\n"
            "FROM matches m,\n"
            "     LATERAL (SELECT sum(cardinality(positions)) AS length\n"
            "              FROM unnest(m.{tsv_name})) AS l,\n"
            "     LATERAL (SELECT lexeme, cardinality(positions) AS tf\n"
            "              FROM unnest(m.{tsv_name})) AS w\n"
            "     JOIN terms USING (lexeme)\n"
            "GROUP BY m.id\n"
            "ORDER BY score DESC, m.id\n"
            "LIMIT " + depth
        )
        .format(
            key=ident(source.key)
            if source.key == "id"
            else sql.SQL("{} AS id").format(ident(source.key)),
            tsv=source.vector()
            if source.is_tsvector
            else sql.SQL("{} AS tsv").format(source.vector()),
            table=source.name(),
            tsv_name=ident(source.column) if source.is_tsvector else sql.SQL("tsv"),
        )
        .as_string()
    )


def bm25_sparse_select(bm25: Bm25Table, text: str, depth: str) -> str:
    """BM25 as minus pgvector's inner product of the stored weights and the query's IDFs."""
    return (
        sql.SQL(
            "WITH query AS (\n"
            "    SELECT format('{{%s}}/%s',\n"
            "                  string_agg(t.idx || ':' || " + IDF + ",\n"
            "                             ',' ORDER BY t.idx),\n"
            "                  s.terms)::sparsevec AS weights\n"
            "    " + _idf_terms(bm25, text) + "\n"
            "    GROUP BY s.terms\n"
            ")\n"
            "SELECT d.id, -(d.weights <#> query.weights) AS score\n"
            "FROM {table} d, query\n"
            "WHERE d.weights <#> query.weights < 0\n"
            "ORDER BY d.weights <#> query.weights, d.id\n"
            "LIMIT " + depth
        )
        .format(table=ident(bm25.name))
        .as_string()
    )


@dataclass(frozen=True)
class Ranker:
    """One lexical ranker over one text source (`bm25` for the BM25 kinds), with its knobs."""

    kind: str  # one of KINDS
    source: TextSource
    bm25: Bm25Table | None = None
    k1: float = K1
    b: float = B

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown lexical ranker {self.kind!r}: {', '.join(KINDS)}")
        if self.kind.startswith("bm25") and self.bm25 is None:
            raise ValueError(f"{self.kind} needs the text table's BM25 tables")
        if self.kind == "bm25_sparse" and (self.k1, self.b) != (self.bm25.k1, self.bm25.b):
            raise ValueError("bm25_sparse's k1 and b are the stored weights' (built with "
                             f"k1 = {self.bm25.k1}, b = {self.bm25.b})")  # fmt: skip

    @property
    def label(self) -> str:
        if self.kind.startswith("bm25"):
            return f"{LABELS[self.kind]} (k1={self.k1:g}, b={self.b:g})"
        return LABELS[self.kind]

    def knobs(self) -> tuple[tuple[str, float], ...]:
        """(name, value) of the parameters after the text and the depth."""
        return (("k1", self.k1), ("b", self.b)) if self.kind == "bm25" else ()

    def select(self, text: str, depth: str, knobs: Sequence[str] = (), column: str = "score"):
        """The SELECT of (key, score), best first, with these placeholders."""
        if self.kind in ("fts", "fts_or"):
            return fts_select(self.source, text, depth, any_of=self.kind == "fts_or",
                              column=column)  # fmt: skip
        assert self.bm25 is not None
        if self.kind == "bm25":
            return bm25_select(self.source, self.bm25, text, depth, *knobs)
        return bm25_sparse_select(self.bm25, text, depth)
