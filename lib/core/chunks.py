"""The real corpus of the recall tables: 1–3 sentence passages of five manuals (data/chunks/).

`scripts/extract_chunks.py` writes one ``<source>.jsonl.xz`` per manual (PostgreSQL, Python,
SQLite, Git, Linux) and ``sources.json`` with each one's package, version, licence and counts.

A chunk's id is the first 16 hex digits of its content hash, the key of its vector in the
embedding cache: it depends on the text alone, so it does not move when pages are added,
removed or reordered. `dataset_order` is the order rows take in the recall tables: by id,
which is a fixed shuffle of every source.

    >>> from lib.core.chunks import load_chunks
    >>> corpus = load_chunks(["sqlite"])
    >>> corpus.sources[corpus.source_of(0)], corpus.text(0)[:40]
"""

from __future__ import annotations

import hashlib
import json
import lzma
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from lib.core.corpus import DATA_DIR, CorpusError

CHUNKS_DIR: Path = DATA_DIR / "chunks"
SOURCES_FILE = "sources.json"
# How a page names each source.
TITLES = {
    "postgresql": "PostgreSQL",
    "python": "Python",
    "sqlite": "SQLite",
    "git": "Git",
    "linux": "Linux kernel",
}


def content_hash(text: str) -> str:
    """sha256 hex of an embedded documentation text: the embedding cache's key for it.

    The same key as `lib.core.vectors.passage_hash` gives a manual passage, so the same text is
    embedded once whichever corpus it comes from."""
    return hashlib.sha256(f"passage\0{text}".encode()).hexdigest()


def chunk_id(text: str) -> str:
    """The chunk's stable id: 16 hex digits of its content hash."""
    return content_hash(text)[:16]


@dataclass(frozen=True)
class SourceInfo:
    """One manual the corpus comes from, as `sources.json` records it."""

    name: str
    package: str
    version: str | None
    upstream: str
    licence: str
    licence_file: str
    pages: int
    passages: int
    file: str

    def origin(self) -> str:
        version = f" {self.version}" if self.version else ""
        return f"Debian package {self.package}{version} ({self.upstream}), {self.licence}"


@dataclass(frozen=True)
class Chunk:
    """One passage with where it comes from."""

    id: str
    source: str
    doc: str
    title: str
    section: str
    text: str
    spdx: str | None = None

    def where(self) -> str:
        """Source, page and heading, for a caption."""
        return f"{self.source} · {self.doc} · {self.section}"


class Chunks:
    """The passages of some sources, in file order, kept compactly (one str per text, small
    integer arrays for the rest) so that an app process can hold 300,000 of them."""

    def __init__(
        self,
        sources: Sequence[SourceInfo],
        texts: list[str],
        source_idx: np.ndarray,
        doc_idx: np.ndarray,
        section_idx: np.ndarray,
        docs: list[tuple[str, str, str | None]],  # (path, title, spdx)
        sections: list[str],
    ) -> None:
        self.sources = tuple(sources)
        self._texts = texts
        self._source_idx = source_idx
        self._doc_idx = doc_idx
        self._section_idx = section_idx
        self._docs = docs
        self._doc_chapters: list[str] | None = None
        self._sections = sections

    def __len__(self) -> int:
        return len(self._texts)

    def text(self, i: int) -> str:
        return self._texts[i]

    def texts(self, idx: Iterable[int]) -> list[str]:
        return [self._texts[i] for i in idx]

    def source_of(self, i: int) -> int:
        return int(self._source_idx[i])

    def chunk(self, i: int) -> Chunk:
        text = self._texts[i]
        doc, title, spdx = self._docs[self._doc_idx[i]]
        return Chunk(
            id=chunk_id(text),
            source=self.sources[self._source_idx[i]].name,
            doc=doc,
            title=title,
            section=self._sections[self._section_idx[i]],
            text=text,
            spdx=spdx,
        )

    def chapters(self, idx: Iterable[int]) -> list[str]:
        """The manual and chapter of the passages at `idx` (see `doc_chapters`)."""
        labels = self.doc_chapters()
        return [labels[self._doc_idx[i]] for i in idx]

    def doc_chapters(self) -> list[str]:
        """Each page's manual and chapter, "PostgreSQL · Chapter 11. Indexes": for the
        PostgreSQL manual the chapter (or appendix) its page titles name; for the manuals
        kept in folders (Python, Linux kernel) the top folder, "Python · library"; the
        manual alone for SQLite and Git, whose pages are flat."""
        if self._doc_chapters is None:
            self._doc_chapters = _doc_chapters(
                [(self.sources[s].name, doc, title) for s, (doc, title, _) in self._doc_sources()]
            )
        return self._doc_chapters

    def _doc_sources(self) -> list[tuple[int, tuple[str, str, str | None]]]:
        source = np.zeros(len(self._docs), dtype=np.int64)
        source[self._doc_idx] = self._source_idx
        return [(int(source[d]), doc) for d, doc in enumerate(self._docs)]

    def titles(self) -> str:
        """'PostgreSQL, Python, SQLite, Git and Linux kernel'."""
        names = [TITLES.get(s.name, s.name) for s in self.sources]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def source_counts(self, idx: Iterable[int] | None = None) -> dict[str, int]:
        """How many of the passages (of `idx`, else all) come from each source."""
        picked = self._source_idx if idx is None else self._source_idx[np.asarray(list(idx))]
        counts = np.bincount(picked, minlength=len(self.sources))
        return {s.name: int(c) for s, c in zip(self.sources, counts, strict=True)}

    def hashes(self) -> list[str]:
        """Every passage's content hash (the embedding cache's key), in file order."""
        return _hashes(self)

    def ids(self) -> list[str]:
        return [h[:16] for h in self.hashes()]

    def dataset_order(self) -> np.ndarray:
        """Passage positions sorted by id: the order of rows in the recall tables."""
        return np.argsort(np.asarray(self.ids()), kind="stable")

    def fingerprint(self) -> str:
        """A hash of every passage's content hash, in file order."""
        h = hashlib.sha256()
        for x in self.hashes():
            h.update(bytes.fromhex(x))
        return h.hexdigest()[:16]


_HASHES: dict[int, list[str]] = {}


def _hashes(chunks: Chunks) -> list[str]:
    key = id(chunks)
    if key not in _HASHES:
        _HASHES[key] = [content_hash(t) for t in chunks._texts]
    return _HASHES[key]


def digest(directory: Path = CHUNKS_DIR) -> str:
    """A hash of the corpus files as they are (sources.json and every source's file)."""
    h = hashlib.sha256()
    for path in [directory / SOURCES_FILE] + [directory / s.file for s in read_sources(directory)]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def read_sources(directory: Path = CHUNKS_DIR) -> list[SourceInfo]:
    """Every source the extraction wrote, in extraction order."""
    path = directory / SOURCES_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    fields = SourceInfo.__dataclass_fields__
    return [SourceInfo(**{k: v for k, v in s.items() if k in fields}) for s in raw]


def read_chunks(
    names: Sequence[str] | None = None, directory: Path = CHUNKS_DIR, limit: int | None = None
) -> Chunks:
    """The passages of the named sources (all by default), in extraction order; at most
    `limit` per source when given (a small slice, for tests). A passage an earlier source
    already has is left out, so that every id is unique."""
    sources = [s for s in read_sources(directory) if names is None or s.name in names]
    if names is not None and len(sources) != len(set(names)):
        missing = set(names) - {s.name for s in sources}
        raise CorpusError(f"no source named {', '.join(sorted(missing))} in {directory}")
    texts: list[str] = []
    source_idx: list[int] = []
    doc_idx: list[int] = []
    section_idx: list[int] = []
    docs: list[tuple[str, str, str | None]] = []
    sections: list[str] = []
    section_ids: dict[str, int] = {}
    seen: set[str] = set()
    for s_i, source in enumerate(sources):
        path = directory / source.file
        taken = 0
        try:
            with lzma.open(path, "rt", encoding="utf-8") as f:
                for line in f:
                    if limit is not None and taken >= limit:
                        break
                    record = json.loads(line)
                    docs.append((record["doc"], record["title"], record.get("spdx")))
                    for heading, found in record["sections"]:
                        sec = section_ids.setdefault(heading, len(sections))
                        if sec == len(sections):
                            sections.append(heading)
                        for text in found[: None if limit is None else limit - taken]:
                            if text in seen:
                                continue
                            seen.add(text)
                            texts.append(text)
                            source_idx.append(s_i)
                            doc_idx.append(len(docs) - 1)
                            section_idx.append(sec)
                            taken += 1
        except (OSError, lzma.LZMAError, json.JSONDecodeError, KeyError) as exc:
            raise CorpusError(f"cannot read passages from {path}: {exc}") from exc
    return Chunks(
        sources,
        texts,
        np.asarray(source_idx, dtype=np.int8),
        np.asarray(doc_idx, dtype=np.int32),
        np.asarray(section_idx, dtype=np.int32),
        docs,
        sections,
    )


@lru_cache(maxsize=2)
def load_chunks(names: tuple[str, ...] | None = None, limit: int | None = None) -> Chunks:
    """`read_chunks` of the shipped corpus, read once per process (shared, read-only)."""
    return read_chunks(names, limit=limit)


# ---- chapters ---------------------------------------------------------------------------

_NUMBERED = re.compile(r"(?:Chapter |Appendix )?([0-9]+|[A-Z])\.")
_HEADING = re.compile(r"(Chapter|Appendix) ([0-9]+|[A-Z])\. (.*)")


def _doc_chapters(docs: Sequence[tuple[str, str, str]]) -> list[str]:
    """(source, page, title) of each page -> its manual and chapter (`Chunks.doc_chapters`).
    PostgreSQL: "9.7. Pattern Matching" is in "Chapter 9. Functions and Operators"; a
    reference page is in the chapter of its section's page (spi-*.html in spi.html's), else
    in "Reference: SQL commands" or "Reference: applications"."""
    headings: dict[str, str] = {}
    page_key: dict[str, str] = {}
    for source, page, title in docs:
        if source != "postgresql":
            continue
        m = _HEADING.match(title)
        if m:
            headings[m.group(2)] = f"{m.group(1)} {m.group(2)}. {m.group(3)}"
        m = _NUMBERED.match(title)
        if m:
            page_key.setdefault(page, m.group(1))
    out = []
    for source, page, title in docs:
        manual = TITLES.get(source, source)
        if source != "postgresql":
            folder = page.split("/", 1)[0] if "/" in page else None
            out.append(f"{manual} · {folder}" if folder else manual)
            continue
        m = _NUMBERED.match(title)
        key = m.group(1) if m else page_key.get(page.split("-")[0] + ".html")
        if key is None:
            sqlref = page.startswith("sql-")
            chapter = "Reference: SQL commands" if sqlref else "Reference: applications"
        else:
            kind = "Chapter" if key.isdigit() else "Appendix"
            chapter = headings.get(key, f"{kind} {key}")
        out.append(f"{manual} · {chapter}")
    return out
