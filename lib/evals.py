"""The evals gate from the command line: systems run over labelled queries, scored with
intervals, a JSON report, and a non-zero exit when nDCG@10 dropped against a baseline.

    python -m lib.evals --size 100000                          # exact, hnsw:40, fts; test split
    python -m lib.evals --size 100000 --systems exact,hnsw:10,hnsw:40,hnsw:100,fts,binary:40:4
    python -m lib.evals --size 100000 --systems hnsw:40 --out new.json --baseline main.json
    python -m lib.evals --size 100000 --systems hnsw:100,bm25,hybrid,hybrid:rrf:50:text=fts
    python -m lib.evals --table public.docs --column embedding --id-column id \\
        --text-column body --queries queries.tsv --qrels qrels.txt --out report.json

Systems (`--systems`, comma-separated, or `--system` repeated): `exact` (every row, index
scans off, the plan proved exact), `hnsw:EF` (the vector index at hnsw.ef_search = EF),
`fts` (websearch_to_tsquery('english', …) ranked by ts_rank_cd, every word required),
`fts_or` (any word of the query, ranked by ts_rank_cd), and on the lab's sizes `halfvec:EF`
and `binary:EF:OVERSAMPLE` (the Index tuning page's quantized HNSW on a copy of the rows,
built if missing; binary re-ranks EF… candidates by the full vectors), `bm25[:K1:B]` (BM25
computed in SQL from the tsvectors, k1 = 1.2 and b = 0.75 by default) and `bm25_sparse`
(the same as stored sparsevec weights queried with <#>; BM25's tables are built if missing,
lib/dataset/bm25_tables.py). `hybrid` fuses the HNSW index with a lexical ranker in one
statement (lib/harness/hybrid.py): `hybrid[:rrf[:K]|:convex][:text=fts|fts_or|bm25|
bm25_sparse][:bm25=K1/B][:w=WV/WT][:depth=DV/DT][:rerank=N]`, by default RRF with k = 60,
BM25, weights 1 and 1, 100 candidates a side; `rerank=N` re-ranks the fused top N by MaxSim
over MiniLM's token vectors (lab sizes only). Each keeps the top `--depth` (100) rows per
query.

Where: `--size N` is a recall table of the lab (prepared beforehand: `make prepare`), its
text side (lib/dataset/text_tables.py) built if missing, with the lab's labels
(data/labels/, `--split test` by default), only the queries the size can evaluate.
`--table schema.table` is your own: its vector column (`--column`, default the only one),
the column whose values are the doc ids of your qrels (`--id-column`, default its primary
key), and for `fts`, `fts_or` and `hybrid:…:text=fts|fts_or` a text or tsvector column
(`--text-column`); BM25 needs tables built from the text, so it runs on the lab's sizes.
Your table is only read: every statement runs in a transaction with `SET LOCAL
transaction_read_only = on`.

Formats:

- `--qrels`: TREC qrels, one judgement a line, `query_id 0 doc_id relevance` (whitespace
  separated; relevance 0 = not relevant, 1, 2, … graded; nDCG uses the grade as gain).
- `--queries`: TSV with a header line naming its columns, `query_id` and `text` required,
  `kind` and `split` optional (other columns ignored; data/labels/queries.tsv is one), or
  JSONL (a `.jsonl` file), one object a line: `{"query_id": "q1", "text": "…", "kind":
  "faq", "split": "test", "vector": [0.01, …]}`, `text` and `query_id` required. Queries
  without `vector` are embedded with `--model` (default all-MiniLM-L6-v2) as queries, once,
  and kept in the embedding cache. Only queries with a relevant judgement are evaluated.

Output: the JSON report on stdout, or in `--out` (a summary then goes to stderr); progress
on stderr. The report holds, per system: its SQL and settings, plan, latency, rows
returned, each metric's mean with its bootstrap interval, per kind, per query (metrics,
latency, top 10 doc ids); then paired comparisons of every two systems; then the versions.

The gate: with `--baseline report.json`, each system is compared with the baseline's system
of the same name (or `--baseline-system NAME`, or the baseline's only system) on the queries
both scored. It fails when nDCG@10 dropped, the paired randomisation test's p < `--alpha`
(0.05), and the drop's bootstrap interval (confidence 1 - alpha) lies below zero; the queries
that lost most are printed. Exit codes: 0 passed (or no baseline), 3 a regression, 1 the run
failed (the server cannot be reached, a table or file is wrong: one JSON line that says why),
2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from lib.core import versions
from lib.core.database import Database, DatabaseUnavailable, open_database
from lib.core.embeddings.base import EmbeddingError, checked_vectors
from lib.core.embeddings.local import MINILM
from lib.core.vectors import default_cache
from lib.dataset import bm25_tables, config_tables, text_tables
from lib.dataset.index_configs import DEFAULT_OVERSAMPLE, Config
from lib.dataset.passages import Dataset, load_dataset
from lib.dataset.recall_tables import table_status
from lib.harness import evals, lexical
from lib.harness import hybrid as hybrid_mod
from lib.harness import labels as labels_mod
from lib.harness import rerank as rerank_mod
from lib.harness.evals import System
from lib.harness.labels import Labels, Query
from lib.harness.recall import HarnessError, Target, generated_target
from lib.lessons.recall import vector_columns as vc

DEFAULT_SYSTEMS = "exact,hnsw:40,fts"
REGRESSION_EXIT = 3
READ_ONLY = {"transaction_read_only": "on"}


class InputProblem(HarnessError):
    """A queries or qrels file, or a column, is not what the gate needs."""


# ---- systems as typed ---------------------------------------------------------------------


@dataclass(frozen=True)
class SystemSpec:
    kind: str  # exact, hnsw, halfvec, binary, fts, fts_or, bm25, bm25_sparse, hybrid
    ef_search: int = 40
    oversample: int = DEFAULT_OVERSAMPLE
    k1: float = bm25_tables.K1
    b: float = bm25_tables.B
    hybrid: hybrid_mod.HybridSpec | None = None

    @property
    def name(self) -> str:
        if self.kind in ("exact", "fts", "fts_or", "bm25_sparse"):
            return self.kind
        if self.kind == "bm25":
            default = (self.k1, self.b) == (bm25_tables.K1, bm25_tables.B)
            return "bm25" if default else f"bm25:{self.k1:g}:{self.b:g}"
        if self.kind == "hybrid":
            assert self.hybrid is not None
            return self.hybrid.name
        if self.kind == "binary":
            return f"binary:{self.ef_search}:{self.oversample}"
        return f"{self.kind}:{self.ef_search}"

    @property
    def text_kind(self) -> str | None:
        """The lexical ranker this system needs, if any."""
        if self.kind == "hybrid":
            assert self.hybrid is not None
            return self.hybrid.text
        return self.kind if self.kind in lexical.KINDS else None


SYSTEM_FORMS = (
    "exact, hnsw:EF, halfvec:EF, binary:EF:OVERSAMPLE, fts, fts_or, bm25[:K1:B], bm25_sparse "
    "or hybrid[:rrf[:K]|:convex][:text=KIND][:bm25=K1/B][:w=WV/WT][:depth=DV/DT]"
)


def parse_systems(texts: list[str]) -> list[SystemSpec]:
    """`exact,hnsw:40,fts,binary:40:4,bm25,hybrid:rrf:50` (or several such): the systems."""
    out: list[SystemSpec] = []
    for text in texts:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            kind, *args = part.split(":")
            if kind == "hybrid":
                spec = SystemSpec(kind, hybrid=hybrid_mod.parse_hybrid(part))
                if spec.name in {s.name for s in out}:
                    raise ValueError(f"system {spec.name} is named twice")
                out.append(spec)
                continue
            try:
                values = [float(a) if kind == "bm25" else int(a) for a in args]
            except ValueError:
                raise ValueError(f"system {part!r}: numbers after the colons") from None
            if kind in ("exact", "fts", "fts_or", "bm25_sparse") and not values:
                spec = SystemSpec(kind)
            elif kind == "bm25" and len(values) in (0, 2):
                spec = SystemSpec(kind, k1=values[0], b=values[1]) if values else SystemSpec(kind)
                if spec.k1 < 0 or not 0 <= spec.b <= 1:
                    raise ValueError(f"system {part!r}: k1 is 0 or more, b between 0 and 1")
            elif kind in ("hnsw", "halfvec") and len(values) <= 1:
                spec = SystemSpec(kind, *(values or [40]))
            elif kind == "binary" and len(values) <= 2:
                spec = SystemSpec(kind, *(values or [40]))
            else:
                raise ValueError(f"unknown system {part!r}: {SYSTEM_FORMS}")
            if min([spec.ef_search, spec.oversample]) < 1:
                raise ValueError(f"system {part!r}: values are 1 or more")
            if spec.name in {s.name for s in out}:
                raise ValueError(f"system {spec.name} is named twice")
            out.append(spec)
    if not out:
        raise ValueError("name at least one system")
    return out


def ranker_of(spec: SystemSpec, source: evals.TextSource, bm25) -> lexical.Ranker:
    """The lexical ranker a system uses (alone, or as a hybrid's text side)."""
    kind = spec.text_kind
    assert kind is not None
    k1, b = (spec.hybrid.k1, spec.hybrid.b) if spec.hybrid else (spec.k1, spec.b)
    if kind == "bm25_sparse" and bm25 is not None:
        k1, b = bm25.k1, bm25.b
    return lexical.Ranker(kind, source, bm25 if kind.startswith("bm25") else None, k1, b)


def text_system(
    spec: SystemSpec, source, bm25, target: Target, index, depth: int, rerank=None
) -> System:
    """A lexical system, or a hybrid one (its vector side on the HNSW `index`; `rerank(n)`
    gives the re-ranker of its top n when it asks for one)."""
    ranker = ranker_of(spec, source, bm25)
    if spec.kind == "fts":
        return evals.fts_system(source, depth=depth)
    if spec.kind != "hybrid":
        return hybrid_mod.lexical_system(ranker, depth=depth)
    assert spec.hybrid is not None
    if index is None:
        raise InputProblem(f"{spec.name} needs an HNSW index on the vector column")
    reranker = None
    if spec.hybrid.rerank:
        if rerank is None:
            raise InputProblem(f"{spec.name}: re-ranking runs on the lab's sizes only")
        reranker = rerank(spec.hybrid.rerank)
    return hybrid_mod.fusion_system(
        target, index, ranker, spec.hybrid.fusion, name=spec.name, depth=depth, rerank=reranker
    )


def hnsw_label(spec: SystemSpec) -> str:
    if spec.kind == "binary":
        return f"binary HNSW ef_search={spec.ef_search} + re-rank (×{spec.oversample})"
    return f"{'HNSW' if spec.kind == 'hnsw' else 'halfvec HNSW'} ef_search={spec.ef_search}"


# ---- queries and qrels files --------------------------------------------------------------


def read_queries(path: Path) -> tuple[list[Query], dict[str, np.ndarray]]:
    """The queries of a TSV (header line) or JSONL file, and the vectors JSONL gave."""
    queries: list[Query] = []
    vectors: dict[str, np.ndarray] = {}
    with path.open(encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    qid, text = obj.get("query_id", obj.get("id")), obj["text"]
                    if qid is None or not isinstance(text, str):
                        raise KeyError("query_id")
                    qid = str(qid)
                except (ValueError, KeyError, AttributeError):
                    raise InputProblem(
                        f'{path}:{n}: expected {{"query_id": …, "text": …}} on each line'
                    ) from None
                queries.append(Query(qid, str(obj.get("kind", "all")), str(obj.get("split", "")),
                                     "", text))  # fmt: skip
                if obj.get("vector") is not None:
                    vectors[qid] = np.asarray(obj["vector"], dtype=np.float32)
        else:
            header = f.readline().rstrip("\n").split("\t")
            if "query_id" not in header or "text" not in header:
                raise InputProblem(f"{path}: the header line must name query_id and text")
            for n, line in enumerate(f, 2):
                if not line.strip():
                    continue
                cells = line.rstrip("\n").split("\t")
                if len(cells) != len(header):
                    raise InputProblem(f"{path}:{n}: {len(cells)} cells, {len(header)} named")
                cell = dict(zip(header, cells, strict=True))
                queries.append(
                    Query(cell["query_id"], cell.get("kind") or "all", cell.get("split", ""),
                          cell.get("source", ""), cell["text"])
                )  # fmt: skip
    ids = [q.id for q in queries]
    if len(set(ids)) != len(ids):
        raise InputProblem(f"{path}: a query id appears twice")
    return queries, vectors


def read_labels(queries_path: Path, qrels_path: Path, split: str | None) -> tuple[Labels, dict]:
    """Your queries (of `split`, when given) that have a relevant judgement, with their
    judgements, and the vectors the queries file gave."""
    try:
        qrels = labels_mod.read_qrels(qrels_path)
    except ValueError as e:
        raise InputProblem(str(e)) from None
    queries, vectors = read_queries(queries_path)
    kept = tuple(
        q
        for q in queries
        if (split is None or q.split == split) and any(r >= 1 for r in qrels.get(q.id, {}).values())
    )
    return Labels(kept, {q.id: qrels[q.id] for q in kept}), vectors


# ---- where ---------------------------------------------------------------------------------


@dataclass
class Setup:
    systems: list[System]
    labels: Labels
    vectors: dict[str, np.ndarray]
    doc_id: Any
    where: dict[str, Any]


def _vectors(labels: Labels, given: dict, model_name: str, dimension: int | None, say) -> dict:
    """Query vectors: those given, the rest embedded by the model (cached)."""
    todo = [q for q in labels.queries if q.id not in given]
    out = dict(given)
    if todo:
        from lib.core.embeddings.registry import load_model

        model = load_model(model_name)
        t0 = time.perf_counter()
        vecs = evals.query_vectors(model, [q.text for q in todo], default_cache())
        say(f"{len(todo)} query vectors of {model_name} in {time.perf_counter() - t0:.1f} s")
        out.update(zip((q.id for q in todo), vecs, strict=True))
    dims = {v.shape[-1] for v in out.values()}
    if dimension is not None and dims - {dimension}:
        raise InputProblem(
            f"query vectors have {sorted(dims)} dimensions, the column {dimension}: "
            "embed the queries with the model that made the column (--model)"
        )
    return {q: checked_vectors(v, v.shape[-1], 1)[0] for q, v in out.items()}


def lab_setup(db: Database, args, specs: list[SystemSpec], say) -> Setup:
    """The systems on size `--size` of the lab, and the labels it can evaluate."""
    ds = load_dataset()
    n = args.size
    status = table_status(db, ds, n)
    if not status.ready():
        raise HarnessError(
            f"the recall table of {n:,} rows is not prepared: `make prepare` (or "
            f"`python -m lib.prepare --sizes {n}`) builds it"
        )
    if status.index is None or status.index.kind != "hnsw":
        raise HarnessError(f"{status.table}'s index is not HNSW")
    if args.queries:
        labels, given = read_labels(args.queries, args.qrels, args.split)
    else:
        labels, given = labels_mod.read(), {}
    labels = evals.lab_labels(ds, n, labels, split=args.split, kinds=args.kinds)
    target = generated_target(status.table)
    systems: list[System] = []
    text = bm25 = None
    for spec in specs:
        if spec.text_kind is not None and text is None:
            say(f"text side of {n:,} rows…")
            text, built = text_tables.build(db, ds, n)
            if built:
                say(f"built {text.name} ({text.load_seconds:.1f} s load, "
                    f"GIN {text.index_seconds:.1f} s)")  # fmt: skip
        if (spec.text_kind or "").startswith("bm25") and bm25 is None:
            assert text is not None
            bm25, built = bm25_tables.build(db, text.name, text.loaded_at)
            if built:
                say(f"built {bm25.name}: {bm25.terms:,} lexemes in {bm25.build_seconds:.1f} s")
        if spec.kind == "exact":
            systems.append(evals.exact_system(target, depth=args.depth))
        elif spec.kind == "hnsw":
            systems.append(evals.index_system(
                spec.name, hnsw_label(spec), target, status.index.name, spec.ef_search,
                depth=args.depth,
            ))  # fmt: skip
        elif spec.text_kind is not None:
            assert text is not None
            source = evals.lab_text_source(text.name)
            systems.append(text_system(
                spec, source, bm25, target, status.index.name, args.depth, rerank_mod.lab_maxsim(ds)
            ))  # fmt: skip
        else:
            systems.append(quantized_system(db, ds, n, spec, args.depth, say))
    vectors = _vectors(labels, given, ds.model_name, ds.dimension, say)
    where = {
        "target": "lab", "size": n, "table": status.table,
        "text_table": text.name if text else None, "model": ds.model_name,
        "index": status.index.name, "index_build_seconds": status.index.build_seconds,
        "text_index_build_seconds": text.index_seconds if text else None,
        "bm25_table": bm25.name if bm25 else None,
        "bm25_build_seconds": bm25.build_seconds if bm25 else None,
        "real_rows": ds.real_rows(n), "queries_file": str(args.queries or labels_mod.LABELS_DIR),
        "split": args.split, "kinds": args.kinds,
    }  # fmt: skip
    return Setup(systems, labels, vectors, evals.lab_doc_ids(ds), where)


def quantized_system(
    db: Database, ds: Dataset, n: int, spec: SystemSpec, depth: int, say
) -> System:
    """halfvec or binary + re-rank on the Index tuning page's copy (built if missing)."""
    config = Config(spec.kind).resolved(n)
    built = config_tables.build_config(
        db, ds, n, config, on_phase=lambda phase: say(f"{config.label()}: {phase}…")
    )
    if built.indexed:
        say(f"built {built.place.index} in {built.build_seconds:.1f} s")
    knn = built.place.query(spec.oversample)
    return evals.index_system(
        spec.name, hnsw_label(spec), knn, built.place.index, spec.ef_search, depth=depth
    )


def _column_type(db: Database, col: vc.VectorColumn, name: str) -> str:
    row = db.fetchone(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s AND a.attnum > 0"
        " AND NOT a.attisdropped",
        (col.schema, col.table, name),
        READ_ONLY,
    )
    if row is None:
        raise InputProblem(f"{col.qualified} has no column {name!r}")
    return str(row[0])


def own_setup(db: Database, args, specs: list[SystemSpec], say) -> Setup:
    """The systems on your table, and your labels."""
    if not (args.queries and args.qrels):
        raise InputProblem("your own table needs --queries and --qrels")
    col = vc.find_column(db, args.table, args.column)
    key = args.id_column or (col.key if col.key != "ctid" else None)
    if key is None:
        raise InputProblem(f"{col.qualified} has no single-column key: name --id-column")
    _column_type(db, col, key)
    usable = [i for i in col.indexes if i.valid and i.operator and not i.partial]
    hnsw = next((i for i in usable if i.kind == "hnsw"), None)
    index = hnsw or (usable[0] if usable else None)
    operator = (index.operator if index else None) or "<=>"
    target = Target(col.schema, col.table, col.column, key, operator)
    systems: list[System] = []
    for spec in specs:
        if spec.kind == "exact":
            systems.append(evals.exact_system(target, depth=args.depth))
        elif spec.kind == "hnsw":
            if hnsw is None:
                raise InputProblem(f"{col.label} has no valid HNSW index for {spec.name}")
            systems.append(evals.index_system(
                spec.name, hnsw_label(spec), target, hnsw.name, spec.ef_search, depth=args.depth
            ))  # fmt: skip
        elif spec.text_kind in ("fts", "fts_or"):
            if not args.text_column:
                raise InputProblem(f"{spec.name} on your table needs --text-column")
            typ = _column_type(db, col, args.text_column)
            if typ not in ("text", "tsvector") and not typ.startswith("character"):
                raise InputProblem(f"--text-column {args.text_column} is {typ}, not text")
            source = evals.TextSource(col.schema, col.table, key, args.text_column,
                                      typ == "tsvector")  # fmt: skip
            hnsw_name = hnsw.name if hnsw else None
            systems.append(text_system(spec, source, None, target, hnsw_name, args.depth))
        elif spec.text_kind is not None:
            raise InputProblem(
                f"{spec.name} runs on the lab's sizes only: BM25 needs statistics tables built "
                "from the text (lib/dataset/bm25_tables.py), and your table is only read; "
                "fts, fts_or and hybrid:…:text=fts_or run on it"
            )
        else:
            raise InputProblem(f"{spec.name} runs on the lab's sizes only")
    labels, given = read_labels(args.queries, args.qrels, args.split)
    if not labels.queries:
        raise InputProblem("no query of the queries file has a relevant judgement in the qrels")
    vectors = {}
    if any(s.input in (evals.VECTOR, evals.HYBRID) for s in systems):
        vectors = _vectors(labels, given, args.model, col.dimension, say)
    judged = sorted({d for j in labels.qrels.values() for d in j})
    found = db.fetchone(sql_count(col, key), (judged,), {**READ_ONLY, "statement_timeout": "60s"})
    missing = len(judged) - int(found[0]) if found else None
    if missing:
        say(f"{missing:,} of {len(judged):,} judged doc ids are not in {col.qualified}")
    where = {
        "target": "own", "table": col.qualified, "column": col.column, "id_column": key,
        "text_column": args.text_column, "index": hnsw.name if hnsw else None,
        "model": None if len(given) == len(labels.queries) else args.model,
        "queries_file": str(args.queries), "qrels_file": str(args.qrels), "split": args.split,
        "judged_docs_missing": missing,
    }  # fmt: skip
    return Setup(systems, labels, vectors, str, where)


def sql_count(col: vc.VectorColumn, key: str):
    """How many of the judged doc ids ($1, as text) the table holds."""
    from psycopg import sql

    return sql.SQL("SELECT count(DISTINCT {k}::text) FROM {t} WHERE {k}::text = ANY(%s)").format(
        k=sql.Identifier(key), t=sql.Identifier(col.schema, col.table)
    )


# ---- output -------------------------------------------------------------------------------


def summary_lines(report: dict) -> list[str]:
    """Systems × metrics with intervals, and latency, as a plain-text table."""
    head = f"{'system':<16}" + "".join(f"{m:>24}" for m in report["metrics"]) + f"{'p50 ms':>9}"
    lines = [f"{report['queries']} queries", head]
    for s in report["systems"]:
        cells = "".join(
            f"{v['mean']:>8.3f} [{v['low']:.3f}, {v['high']:.3f}]"
            for v in (s["metrics"][m] for m in report["metrics"])
        )
        lines.append(f"{s['name']:<16}{cells}{s['latency_ms'].get('p50', 0):>9.2f}")
    return lines


def gate_lines(verdicts: list[evals.Verdict], texts: dict[str, str]) -> list[str]:
    out = []
    for v in verdicts:
        out.append(v.sentence())
        if v.regressed:
            for loss in v.losses:
                text = texts.get(loss["query_id"], "")
                out.append(
                    f"  {loss['query_id']}: {loss['baseline']:.3f} -> {loss['now']:.3f}  {text}"
                )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lib.evals",
        description="Score retrieval systems on labelled queries; gate on nDCG@10.",
    )
    ap.add_argument("--size", type=int, help="a recall table of the lab (prepared beforehand)")
    ap.add_argument("--table", help="your own table, schema.table (instead of --size)")
    ap.add_argument("--column", help="its vector column (default: the only one)")
    ap.add_argument("--id-column", help="its column holding the qrels' doc ids")
    ap.add_argument("--text-column", help="its text or tsvector column, for fts")
    ap.add_argument("--queries", type=Path, help="queries, TSV with a header or JSONL")
    ap.add_argument("--qrels", type=Path, help="TREC qrels: query_id 0 doc_id relevance")
    ap.add_argument("--split", help="only queries of this split (lab default: test; all: every)")
    ap.add_argument("--kinds", help="only these kinds of query, comma-separated")
    ap.add_argument("--systems", "--system", action="append", dest="systems",
                    help=f"default {DEFAULT_SYSTEMS}")  # fmt: skip
    ap.add_argument("--model", default=MINILM.name, help="embeds queries given without vectors")
    ap.add_argument("--depth", type=int, default=evals.DEPTH, help="rows kept per query")
    ap.add_argument("--out", type=Path, help="write the JSON report here (else stdout)")
    ap.add_argument("--baseline", type=Path, help="a report to compare with (the gate)")
    ap.add_argument("--baseline-system", help="the baseline's system to compare with")
    ap.add_argument("--alpha", type=float, default=evals.ALPHA)
    ap.add_argument("--resamples", type=int, default=10_000, help="bootstrap and permutations")
    ap.add_argument("--database-url", help="default: DATABASE_URL, else the embedded server")
    args = ap.parse_args(argv)
    if (args.size is None) == (args.table is None):
        ap.error("give exactly one of --size and --table")
    if bool(args.queries) != bool(args.qrels):
        ap.error("--queries and --qrels go together")
    if not 0 < args.alpha < 1 or args.depth < 1 or args.resamples < 100:
        ap.error("--alpha is between 0 and 1, --depth at least 1, --resamples at least 100")
    try:
        specs = parse_systems(args.systems or [DEFAULT_SYSTEMS])
    except ValueError as e:
        ap.error(str(e))
    if args.split is None:
        args.split = "test" if args.size is not None and not args.queries else None
    elif args.split == "all":
        args.split = None
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def fail(e: BaseException) -> int:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1

    baseline = None
    if args.baseline:
        try:
            baseline = json.loads(args.baseline.read_text(encoding="utf-8"))
            if baseline.get("format") != evals.REPORT_FORMAT or "systems" not in baseline:
                raise ValueError(f"{args.baseline} is not a report of python -m lib.evals")
        except (OSError, ValueError) as e:
            return fail(e)
    try:
        db = open_database(args.database_url)
        db.check()
    except DatabaseUnavailable as e:
        return fail(e)
    t0 = time.perf_counter()
    try:
        setup = (lab_setup if args.size is not None else own_setup)(db, args, specs, say)
        if not setup.labels.queries:
            raise InputProblem("no labelled query can be evaluated here")
        say(f"{len(setup.labels.queries)} queries through {len(setup.systems)} systems…")
        evaluation = evals.evaluate(
            db, setup.systems, setup.labels, vectors=setup.vectors, doc_id=setup.doc_id,
            progress=lambda name, done, total: say(f"{name}: {done}/{total}"),
            confidence=1 - args.alpha, resamples=args.resamples,
        )  # fmt: skip
        report = evaluation.report(
            ran_at=datetime.now(UTC).isoformat(timespec="seconds"),
            **setup.where,
            depth=args.depth,
            versions=dict(versions.rows(db.info())),
        )
        verdicts = []
        if baseline is not None:
            pairs = None
            if args.baseline_system:
                pairs = [(s.name, args.baseline_system) for s in setup.systems]
            verdicts = evals.gate(
                baseline, report, alpha=args.alpha, pairs=pairs, resamples=args.resamples
            )
            report["gate"] = {
                "baseline": str(args.baseline), "metric": evals.GATE_METRIC,
                "alpha": args.alpha, "verdicts": [v.__dict__ for v in verdicts],
                "regressed": any(v.regressed for v in verdicts),
            }  # fmt: skip
        report["seconds"] = time.perf_counter() - t0
    except (
        HarnessError, ValueError, LookupError, OSError, EmbeddingError,
        psycopg.errors.DataError, psycopg.errors.UndefinedTable, DatabaseUnavailable,
    ) as e:  # fmt: skip
        return fail(e)
    finally:
        db.close()
    text = json.dumps(report, default=str, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
        for line in summary_lines(report):
            say(line)
    else:
        print(text)
    texts = {q.id: q.text for q in setup.labels.queries}
    for line in gate_lines(verdicts, texts):
        say(line)
    return REGRESSION_EXIT if any(v.regressed for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
