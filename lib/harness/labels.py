"""Labelled queries made from the corpus's own structure, with graded relevance (TREC qrels).

Kinds of query (each query has exactly one):

- ``faq``: a section whose heading is a question (the Python FAQ pages, the kernel's Q&A
  pages, …) → the passages of its answer.
- ``faq_nooverlap``: the FAQ questions whose answer passage shares no content word with the
  question (after stop-words and a crude stemming): the wording does not give the answer away.
- ``glossary``: a term of the PostgreSQL, Python or Git glossary → its definition
  (data/labels/glossaries.jsonl, made by scripts/extract_glossaries.py from the manuals).
- ``glossary_nooverlap``: the glossary terms that no word of their defining passage repeats.
- ``heading``: a section heading, with the page title when the heading alone is ambiguous →
  that section (known-item search); a fixed, hash-chosen sample per manual.

Relevance: 2 for the passage that answers (the answer's first passage, the definition's first
passage, the section's first passage), 1 for the rest of the same unit (the answer's section,
the term's definition, the section). Queries are split into dev and test by a hash of their
id. `build` makes them, `write` stores them under data/labels/, `read` reads them back;
`evaluable` keeps the queries a table can answer.

    .venv/bin/python -m lib.harness.labels build   # rewrites data/labels/ (deterministic)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lib.core.chunks import CHUNKS_DIR, TITLES, chunk_id, read_chunks, read_sources
from lib.core.corpus import DATA_DIR

LABELS_DIR: Path = DATA_DIR / "labels"
GLOSSARIES_FILE = "glossaries.jsonl"
QRELS_FILE = "qrels.txt"
QUERIES_FILE = "queries.tsv"
README_FILE = "README.md"

KINDS = ("faq", "faq_nooverlap", "glossary", "glossary_nooverlap", "heading")
SPLITS = ("dev", "test")
# Share of queries in dev (by a hash of the query id); the rest is the held-out test set.
DEV_SHARE = 0.3
# Heading queries kept per manual (those whose id hashes lowest).
HEADINGS_PER_SOURCE = 100
MAX_QUERY_CHARS = 150
# A size "covers" a kind when at least this many of its test queries are evaluable there.
COVER_MIN = 30

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either else etc ever every few for from further get gets got had has have having he her
    here hers him his how i if in into is it its itself just let lets like may me might more
    most much must my no nor not now of off on once one only or other our ours out over own
    per q same shall she should so some such than that the their theirs them then there these
    they this those through to too under until up upon us use used uses using very via was
    we were what when where whether which while who whom whose why will with within without
    would yes yet you your yours""".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_NUMBERING = re.compile(
    r"^(?:(?:Chapter|Appendix|Part)\s+)?(?:[IVX]+\.|[A-Z]\.|[0-9]+\.?)(?:[0-9]+\.?)*\s+"
)
# A question that leans on its page ("How does it work?") is asked with the page's title.
DEICTIC = frozenset({"it", "this", "that", "they", "them", "these", "those"})
_QUESTION_PREFIX = re.compile(r"^Q[:.]\s*")
_TITLE_SUFFIX = re.compile(r"\s+—\s+(?:Python [0-9.]+|The Linux Kernel) documentation$")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Query:
    """One labelled query."""

    id: str
    kind: str
    split: str
    source: str  # the manual its answer is in
    text: str


@dataclass(frozen=True)
class Labels:
    """Queries (sorted by id) and their judgements: qrels[query id][chunk id] = relevance."""

    queries: tuple[Query, ...]
    qrels: Mapping[str, Mapping[str, int]]

    def by_id(self) -> dict[str, Query]:
        return {q.id: q for q in self.queries}

    def select(
        self,
        *,
        kinds: Collection[str] | None = None,
        split: str | None = None,
        ids: Collection[str] | None = None,
    ) -> Labels:
        """The queries of these kinds, of this split, among these ids (each when given)."""
        kept = tuple(
            q
            for q in self.queries
            if (kinds is None or q.kind in kinds)
            and (split is None or q.split == split)
            and (ids is None or q.id in ids)
        )
        return Labels(kept, {q.id: self.qrels[q.id] for q in kept})

    def answers(self, query_id: str) -> list[str]:
        """The chunk ids of relevance 2 (the passages that answer), in judgement order."""
        return [d for d, r in self.qrels[query_id].items() if r == 2]


# ---- reading the corpus -------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    source: str
    doc: str
    title: str
    position: int  # the section's index on its page
    heading: str
    passages: tuple[str, ...]


def sections(directory: Path = CHUNKS_DIR) -> Iterator[Section]:
    """Every section of every page of the corpus files, in file order."""
    for info in read_sources(directory):
        with lzma.open(directory / info.file, "rt", encoding="utf-8") as f:
            for line in f:
                page = json.loads(line)
                for i, (heading, found) in enumerate(page["sections"]):
                    yield Section(info.name, page["doc"], page["title"], i, heading, tuple(found))


def content_words(text: str) -> set[str]:
    """The words of `text` (two characters or more) that are not stop-words, stemmed."""
    out = set()
    for word in _WORD.findall(text.lower()):
        if len(word) >= 2 and word not in STOP_WORDS:
            out.add(stem(word))
    return out


def stem(word: str) -> str:
    """`word` without a plural or -ing/-ed ending (a crude stemmer, the same on both sides)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def clean_heading(text: str) -> str:
    """A heading without its numbering ("13.3.1. ", "2.10 ", "Q: ") and stray spaces."""
    text = _WS.sub(" ", text).strip()
    text = _QUESTION_PREFIX.sub("", _NUMBERING.sub("", text))
    return text.replace(" ?", "?").strip()


def clean_title(text: str) -> str:
    """A page title without its numbering and its manual's " — … documentation" suffix."""
    return clean_heading(_TITLE_SUFFIX.sub("", _WS.sub(" ", text).strip()))


def normalized(text: str) -> str:
    """How two query texts are compared for duplicates (an uncased model sees them alike)."""
    return _WS.sub(" ", text).strip().casefold().rstrip("?.!: ")


# ---- candidates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    family: str  # faq | glossary | heading: the kind before the overlap test
    source: str
    key: str  # what the id is a hash of
    text: str
    qualified: str | None  # the text to use when `text` is ambiguous (None: drop it then)
    relevant: tuple[str, ...]  # chunk ids of relevance 2
    related: tuple[str, ...]  # chunk ids of relevance 1
    answer: tuple[str, ...]  # the relevance-2 passages' texts (for the overlap test)

    @property
    def id(self) -> str:
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:8]
        return f"{self.family}-{self.source}-{digest}"


def _is_question(heading: str) -> bool:
    return heading.rstrip().endswith("?")


def _question(s: Section) -> str:
    """The section's question, prefixed with its page's title when it says "it" or "this"
    and has at most one content word of its own."""
    question = clean_heading(s.heading)
    words = set(_WORD.findall(question.lower()))
    if words & DEICTIC and len(content_words(question)) <= 1:
        return f"{clean_title(s.title)}: {question}"
    return question


def _opening(passages: Sequence[str]) -> int | None:
    """Index of the first passage that is not part of the question (a "Q:" line, or one
    ending with a question mark), or None."""
    for i, p in enumerate(passages):
        if not (_QUESTION_PREFIX.match(p) or p.rstrip().endswith("?")):
            return i
    return None


def _ids(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(chunk_id(t) for t in texts))


def faq_candidates(all_sections: Iterable[Section]) -> Iterator[Candidate]:
    """One per section whose heading is a question: 2 for the answer's first passage."""
    for s in all_sections:
        if not _is_question(s.heading):
            continue
        first = _opening(s.passages)
        if first is None:
            continue
        answer = s.passages[first]
        yield Candidate(
            family="faq",
            source=s.source,
            key=f"faq\0{s.source}\0{s.doc}\0{s.position}\0{s.heading}",
            text=_question(s),
            qualified=None,
            relevant=_ids([answer]),
            related=tuple(i for i in _ids(s.passages) if i != chunk_id(answer)),
            answer=(answer,),
        )


def glossary_candidates(
    entries: Iterable[Mapping[str, object]], texts: Mapping[str, str]
) -> Iterator[Candidate]:
    """One per glossary term: 2 for its definition's first passage, 1 for the rest of it."""
    for e in entries:
        ids = [str(i) for i in e["passages"]]  # type: ignore[union-attr]
        source, term = str(e["source"]), _WS.sub(" ", str(e["term"])).strip()
        if not ids or ids[0] not in texts:
            continue
        yield Candidate(
            family="glossary",
            source=source,
            key=f"glossary\0{source}\0{e['doc']}\0{term}",
            text=term,
            qualified=f"{term} ({TITLES.get(source, source)})",
            relevant=(ids[0],),
            related=tuple(i for i in dict.fromkeys(ids[1:]) if i != ids[0]),
            answer=(texts[ids[0]],),
        )


def heading_candidates(all_sections: Iterable[Section]) -> Iterator[Candidate]:
    """One per section whose heading is not a question: 2 for its first passage."""
    for s in all_sections:
        if _is_question(s.heading) or not s.passages:
            continue
        heading, title = clean_heading(s.heading), clean_title(s.title)
        qualified = None if normalized(heading) == normalized(title) else f"{title}: {heading}"
        yield Candidate(
            family="heading",
            source=s.source,
            key=f"heading\0{s.source}\0{s.doc}\0{s.position}\0{s.heading}",
            text=heading,
            qualified=qualified,
            relevant=_ids(s.passages[:1]),
            related=_ids(s.passages[1:]),
            answer=s.passages[:1],
        )


def _usable(text: str) -> bool:
    """Not empty, not too long, with at least one content word of two letters or more."""
    if not text or len(text) > MAX_QUERY_CHARS or "…" in text:
        return False
    return any(sum(c.isalpha() for c in w) >= 2 for w in content_words(text))


def _unambiguous(candidates: Sequence[Candidate]) -> list[tuple[Candidate, str]]:
    """Each candidate with its query text: its own when no other candidate has the same one,
    else its qualified text when that one is unique; the rest are dropped."""
    usable = [c for c in candidates if _usable(c.text)]
    plain = Counter(normalized(c.text) for c in usable)
    chosen = []
    for c in usable:
        if plain[normalized(c.text)] == 1:
            chosen.append((c, c.text))
        elif c.qualified is not None and _usable(c.qualified):
            chosen.append((c, c.qualified))
    final = Counter(normalized(t) for _, t in chosen)
    return [(c, t) for c, t in chosen if final[normalized(t)] == 1]


def split_of(query_id: str) -> str:
    """dev or test, from a hash of the query id (no random state)."""
    h = int(hashlib.sha256(f"split\0{query_id}".encode()).hexdigest()[:8], 16)
    return "dev" if h < DEV_SHARE * 2**32 else "test"


def _kind(c: Candidate, text: str) -> str:
    if c.family == "heading":
        return "heading"
    overlap = content_words(text) & set().union(*(content_words(a) for a in c.answer))
    return c.family if overlap else f"{c.family}_nooverlap"


def _rank(query_id: str) -> str:
    return hashlib.sha256(f"sample\0{query_id}".encode()).hexdigest()


def build(directory: Path = CHUNKS_DIR, glossaries: Path | None = None) -> Labels:
    """The labelled queries of the corpus in `directory` (deterministic: same files, same
    labels)."""
    glossaries = glossaries or LABELS_DIR / GLOSSARIES_FILE
    all_sections = list(sections(directory))
    texts = {chunk_id(p): p for s in all_sections for p in s.passages}
    with glossaries.open(encoding="utf-8") as f:
        entries = [json.loads(line) for line in f if line.strip()]
    candidates = [
        *faq_candidates(all_sections),
        *glossary_candidates(entries, texts),
        *heading_candidates(all_sections),
    ]
    ids = Counter(c.id for c in candidates)
    if any(n > 1 for n in ids.values()):
        raise ValueError(f"query ids collide: {[i for i, n in ids.items() if n > 1][:5]}")
    kept = [(c, t) for c, t in _unambiguous(candidates) if c.relevant]
    headings: dict[str, list[tuple[Candidate, str]]] = defaultdict(list)
    chosen = []
    for c, t in kept:
        (headings[c.source] if c.family == "heading" else chosen).append((c, t))
    for found in headings.values():
        chosen.extend(sorted(found, key=lambda ct: _rank(ct[0].id))[:HEADINGS_PER_SOURCE])
    queries = []
    qrels: dict[str, dict[str, int]] = {}
    for c, text in sorted(chosen, key=lambda ct: ct[0].id):
        queries.append(Query(c.id, _kind(c, text), split_of(c.id), c.source, text))
        judged = {d: 2 for d in c.relevant}
        judged.update((d, 1) for d in c.related if d not in judged)
        qrels[c.id] = judged
    return Labels(tuple(queries), qrels)


# ---- files --------------------------------------------------------------------------------


def qrels_text(labels: Labels) -> str:
    """TREC qrels: `query_id 0 doc_id relevance`, one judgement a line."""
    return "".join(
        f"{q.id} 0 {d} {r}\n" for q in labels.queries for d, r in labels.qrels[q.id].items()
    )


def queries_text(labels: Labels) -> str:
    """The queries as TSV with a header line."""
    lines = ["query_id\tkind\tsplit\tsource\ttext\n"]
    lines += [f"{q.id}\t{q.kind}\t{q.split}\t{q.source}\t{q.text}\n" for q in labels.queries]
    return "".join(lines)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """A TREC qrels file: {query id: {doc id: relevance}}, in file order."""
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise ValueError(f"{path}:{n}: expected `query_id 0 doc_id relevance`")
            out.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return out


def read_queries(path: Path) -> list[Query]:
    """The queries TSV (header line first)."""
    with path.open(encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["query_id", "kind", "split", "source", "text"]:
            raise ValueError(f"{path}: unexpected header {header}")
        rows = [line.rstrip("\n").split("\t", 4) for line in f if line.strip()]
    return [Query(*row) for row in rows]


def read(directory: Path = LABELS_DIR) -> Labels:
    """The labels stored in `directory`."""
    queries = read_queries(directory / QUERIES_FILE)
    qrels = read_qrels(directory / QRELS_FILE)
    missing = [q.id for q in queries if q.id not in qrels]
    if missing:
        raise ValueError(f"queries without judgements: {missing[:5]}")
    return Labels(tuple(queries), {q.id: qrels[q.id] for q in queries})


# ---- which tables can answer which queries ------------------------------------------------


def evaluable(labels: Labels, table_ids: Collection[str]) -> list[str]:
    """The ids of the queries whose every relevance-2 passage is in the table."""
    return [q.id for q in labels.queries if all(d in table_ids for d in labels.answers(q.id))]


def restricted(
    qrels: Mapping[str, Mapping[str, int]], table_ids: Collection[str]
) -> dict[str, dict[str, int]]:
    """The judgements of passages in the table only (a passage the table lacks cannot be
    retrieved, so it does not belong in the ideal ranking)."""
    return {q: {d: r for d, r in j.items() if d in table_ids} for q, j in qrels.items()}


def table_order_ids(directory: Path = CHUNKS_DIR) -> list[str]:
    """Every chunk id of the corpus in recall-table order (sorted by id, as
    `lib.chunks.Chunks.dataset_order`): the held-out queries first, then rows 1, 2, …"""
    return sorted(read_chunks(directory=directory).ids())


def table_doc_ids(n: int, order_ids: Sequence[str]) -> frozenset[str]:
    """The chunk ids in the recall table of `n` rows (lib/dataset/passages.py: the first N_QUERIES
    passages in table order are held out, rows 1..n are the next ones, rows past the real
    passages are generated and have none). `order_ids`: `table_order_ids()`, or the ids of a
    `Dataset` (`[h[:16] for h in ds.hashes]`)."""
    from lib.dataset.passages import N_QUERIES

    return frozenset(order_ids[N_QUERIES : N_QUERIES + max(0, n)])


def coverage(
    labels: Labels, order_ids: Sequence[str], sizes: Sequence[int]
) -> dict[int, Counter[tuple[str, str]]]:
    """For each size, how many queries of each (kind, split) are evaluable there."""
    out = {}
    by_id = labels.by_id()
    for n in sizes:
        ids = table_doc_ids(n, order_ids)
        out[n] = Counter((by_id[q].kind, by_id[q].split) for q in evaluable(labels, ids))
    return out


# ---- README -------------------------------------------------------------------------------

_README_HEAD = """# Labelled queries of the corpus (evals)

Made by `lib/harness/labels.py` from the passages in data/chunks/ and the glossary terms in
`glossaries.jsonl`; rebuilt by `make labels` (byte-identical for the same inputs; this file
is written by the same command, figures included). `tests/test_labels.py` checks the files
here are what the builder makes.

| file | what |
| --- | --- |
| `queries.tsv` | `query_id<TAB>kind<TAB>split<TAB>source<TAB>text`, a header line, sorted by id |
| `qrels.txt` | TREC qrels, `query_id 0 doc_id relevance`; doc_id: `lib.chunks.chunk_id` |
| `glossaries.jsonl` | each glossary term with the chunk ids of its definition, in page order |

## How each kind is made

A query's id is `family-source-hash` (family: faq, glossary or heading; the hash is of the
page, the section's position and its heading, or of the term), so it does not depend on the
other queries.

- **faq**: every section whose heading ends with a question mark, in any manual (the Python
  FAQ pages `faq/*.html`; the kernel's Q&A pages such as `bpf/bpf_design_QA.html`,
  `admin-guide/reporting-regressions.html`, `process/maintainer-netdev.html`; a few in the
  others). The query is the heading without its numbering ("2.10. ", "II. ", "Q: "), with
  the page title in front when it leans on its page ("Freezing of tasks: How does it
  work?": a question saying "it", "this", … with at most one content word). Relevance 2:
  the answer's first passage (the first passage of the section that is not part of the
  question: not starting with "Q:", not ending with "?"); 1: the section's other passages.
- **faq_nooverlap**: the same questions, those whose relevance-2 passage shares no content
  word with the question: words are lower-cased runs of two or more letters and digits,
  stop-words (a fixed list in the module) removed, a plural or an `-ing`/`-ed` ending cut
  (`stem`: indexes → index, tables → table, queries → query). A system must match meaning,
  not words. Each FAQ question is in exactly one of faq and faq_nooverlap.
- **glossary**: each term of the glossaries of the PostgreSQL (Appendix M), Python
  (`glossary.html`) and Git (`gitglossary(7)`) manuals. The corpus keeps definitions but
  not terms (a term is too short to be a passage), so `scripts/extract_glossaries.py` reads
  the glossary pages of the Debian packages data/chunks/ was made from, with the corpus
  extractor's own parser, pairs each `<dt>` with its `<dd>` and cuts the definition into
  passages as the corpus was cut (`glossaries.jsonl`). Relevance 2: the definition's first
  passage; 1: the definition's other passages. A term that is also another manual's term is
  qualified with its manual ("attribute (Python)").
- **glossary_nooverlap**: the terms that share no content word with their relevance-2
  passage (an acronym and its expansion, "ACID" → "Atomicity, Consistency, Isolation, and
  Durability."), by the same test as faq_nooverlap.
- **heading**: known-item search. Every section whose heading is not a question is a
  candidate; the query is the heading without its numbering, or "page title: heading" when
  another candidate has the same heading (Description, Examples, OPTIONS, …); a title
  loses its " — … documentation" suffix. Relevance 2: the section's first passage; 1: its
  other passages. The HEADINGS_PER_SOURCE candidates per manual whose id hashes lowest are
  kept.

Why one passage of relevance 2: a query is evaluated on a table only when every relevance-2
passage is in it, and the recall tables hold a fixed sample of the corpus (below), so an
answer of several passages would almost never be whole in a table.

Dropped: queries that are empty, longer than MAX_QUERY_CHARS characters, truncated ("…"),
or without a content word of two letters; queries whose text (compared case-folded, without
trailing punctuation: the default model is uncased) is another query's text, once qualified
where a kind qualifies; questions whose section is all question. Nothing is judged but the
passages of the query's own unit, so a passage elsewhere that also answers counts as wrong.

## Splits

`split` is `dev` when a hash of the query id falls in the first DEV_SHARE of the hash range,
else `test`: no random state, and a query keeps its split when others are added or dropped.
Tune on dev (ef_search, candidate pools, fusion constants); report on test, which is never
used to choose anything. Test is the larger share because its numbers carry the intervals
the lab reports; dev needs only enough queries to choose between settings.
"""

_README_TAIL = """
## Which recall tables can evaluate which queries

A recall table of n rows holds the passages in chunk-id order after the 100 held out as the
recall query set (lib/dataset/passages.py): a fixed shuffle of all five manuals, so every size holds
about the same share of every manual and kind, and no size holds a whole manual. Rows past
the corpus's real passages are generated and hold no passage. A query is evaluable on a
table when every one of its relevance-2 passages is in it (`evaluable`; pass the table's ids
from `table_doc_ids`), and its judgements are then cut to the table's passages
(`restricted`). Counts of evaluable queries, test (dev); a size *covers* a kind when at least
COVER_MIN of its test queries are evaluable there:
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    def cell(x: object) -> str:
        return f"{x:,}" if isinstance(x, int) else str(x)

    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def readme_text(labels: Labels, order_ids: Sequence[str], sizes: Sequence[int]) -> str:
    """data/labels/README.md: provenance, counts per kind × split × source, coverage."""
    sources = list(dict.fromkeys(q.source for q in sorted(labels.queries, key=_source_rank)))
    counts = Counter((q.kind, q.split, q.source) for q in labels.queries)
    rows = []
    for kind in KINDS:
        for split in SPLITS:
            per = [counts[kind, split, s] for s in sources]
            rows.append([kind, split, *per, sum(per)])
    totals = [sum(counts[k, sp, s] for k in KINDS for sp in SPLITS) for s in sources]
    rows.append(["all", "both", *totals, sum(totals)])
    judged = Counter(r for j in labels.qrels.values() for r in j.values())
    cover = coverage(labels, order_ids, sizes)
    cov_rows = []
    for n in sizes:
        c = cover[n]
        cells = [f"{c[k, 'test']:,} ({c[k, 'dev']:,})" for k in KINDS]
        covered = [k for k in KINDS if c[k, "test"] >= COVER_MIN]
        cov_rows.append([n, *cells, ", ".join(covered) or "none"])
    constants = {
        "DEV_SHARE": f"{DEV_SHARE:.0%}",
        "HEADINGS_PER_SOURCE": str(HEADINGS_PER_SOURCE),
        "MAX_QUERY_CHARS": str(MAX_QUERY_CHARS),
        "COVER_MIN": str(COVER_MIN),
    }
    head, tail = _README_HEAD, _README_TAIL
    for name, value in constants.items():
        head = head.replace(name, f"{value} ({name})")
        tail = tail.replace(name, f"{value} ({name})")
    return (
        head
        + "\n## Counts\n\n"
        + f"{len(labels.queries):,} queries, {sum(judged.values()):,} judgements "
        + f"({judged[2]:,} of relevance 2, {judged[1]:,} of relevance 1). "
        + "Queries per kind, split and manual:\n\n"
        + _table(["kind", "split", *sources, "all"], rows)
        + tail
        + "\n"
        + _table(["rows", *KINDS, "covers"], cov_rows)
    )


def _source_rank(q: Query) -> int:
    order = list(TITLES)
    return order.index(q.source) if q.source in order else len(order)


def write(labels: Labels, out_dir: Path, order_ids: Sequence[str], sizes: Sequence[int]) -> None:
    """Write queries.tsv, qrels.txt and README.md into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / QUERIES_FILE).write_text(queries_text(labels), encoding="utf-8")
    (out_dir / QRELS_FILE).write_text(qrels_text(labels), encoding="utf-8")
    (out_dir / README_FILE).write_text(readme_text(labels, order_ids, sizes), encoding="utf-8")


def build_files(
    out_dir: Path, directory: Path = CHUNKS_DIR, glossaries: Path | None = None
) -> Labels:
    """Build the labels of the corpus in `directory` and write them into `out_dir`."""
    from lib.dataset.recall_tables import SIZES

    labels = build(directory, glossaries)
    write(labels, out_dir, table_order_ids(directory), SIZES)
    return labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lib.harness.labels", description=(__doc__ or "").splitlines()[0]
    )
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="rewrite the labels from the corpus")
    b.add_argument("--out-dir", type=Path, default=LABELS_DIR)
    args = ap.parse_args(argv)
    if args.command == "build":
        labels = build_files(args.out_dir)
        kinds = Counter(q.kind for q in labels.queries)
        print(", ".join(f"{k} {kinds[k]:,}" for k in KINDS), f"-> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
