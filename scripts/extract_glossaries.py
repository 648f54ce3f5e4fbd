"""Extract the glossaries' terms: which corpus passages define which term.

    make chunk-sources                               # the Debian packages it reads
    .venv/bin/python scripts/extract_glossaries.py   # rewrites data/labels/glossaries.jsonl

The corpus (data/chunks/) keeps a glossary's definitions but not its terms: a term is too
short to read as a passage. This reads the glossary pages of the PostgreSQL, Python and Git
manuals with scripts/extract_chunks.py's own parser, pairs each top-level <dt> (the term) with
its <dd> (the definition), cuts the definition into passages exactly as the corpus was cut,
and keeps the passages the corpus has, by chunk id. One JSON line per term, in page order:

    {"source": "git", "doc": "gitglossary.html", "term": "branch", "passages": ["3f…", …]}

Same packages and corpus in, same bytes out. lib/harness/labels.py builds the glossary
queries from this file, so the labels rebuild without the packages installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import extract_chunks as ec  # noqa: E402

from lib.core.chunks import chunk_id, read_chunks  # noqa: E402

OUT = ec.ROOT / "data" / "labels" / "glossaries.jsonl"
# (source, glossary page under the source's HTML directory)
GLOSSARIES = (
    ("postgresql", "glossary.html"),
    ("python", "glossary.html"),
    ("git", "gitglossary.html"),
)


@dataclass(frozen=True)
class Entry:
    term: str
    blocks: tuple[str, ...]  # the definition's text blocks, as the corpus extraction saw them


class GlossaryText(ec.PageText):
    """PageText that also records which blocks belong to each top-level <dt> and <dd>."""

    def __init__(self, root: tuple[str, str] | None) -> None:
        super().__init__(root)
        self.marks: list[tuple[str, int, int]] = []  # (dt | dd, first block, end block)
        self._dl = 0
        self._open: list[tuple[str, int, int]] = []  # (tag, dl depth, first block)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        if tag == "dl":
            self._dl += 1
        elif tag in ("dt", "dd") and self._dl == 1:
            self._open.append((tag, self._dl, len(self.blocks)))

    def handle_endtag(self, tag: str) -> None:
        super().handle_endtag(tag)
        if tag == "dl":
            self._dl = max(0, self._dl - 1)
        elif tag in ("dt", "dd") and self._open and self._open[-1][0] == tag:
            _, _, first = self._open.pop()
            self.marks.append((tag, first, len(self.blocks)))

    def entries(self) -> list[Entry]:
        """Each term with its definition's blocks (a term with several <dd> gets them all)."""
        out: list[Entry] = []
        term: str | None = None
        blocks: list[str] = []
        for tag, first, end in self.marks:
            texts = [t for kind, t in self.blocks[first:end] if kind == "text"]
            if tag == "dt":
                if term is not None and blocks:
                    out.append(Entry(term, tuple(blocks)))
                term, blocks = " ".join(texts).rstrip("¶").strip(), []
            elif term is not None:
                blocks.extend(texts)
        if term is not None and blocks:
            out.append(Entry(term, tuple(blocks)))
        return out


def read_glossary(source: ec.Source, doc: str) -> list[Entry]:
    """The terms of one glossary page and their definitions' text blocks."""
    html = (source.html_dir / doc).read_text(encoding="utf-8", errors="replace")
    parser = GlossaryText(source.root)
    parser.feed(html)
    parser.close()
    return parser.entries()


def records(known: set[str]) -> list[dict[str, object]]:
    """One record per term whose definition has at least one passage in the corpus."""
    sources = {s.name: s for s in ec.SOURCES}
    out: list[dict[str, object]] = []
    for name, doc in GLOSSARIES:
        for entry in read_glossary(sources[name], doc):
            ids = [chunk_id(p) for block in entry.blocks for p in ec.passages(block)]
            kept = [i for i in dict.fromkeys(ids) if i in known]
            if entry.term and kept:
                out.append({"source": name, "doc": doc, "term": entry.term, "passages": kept})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    known = set(read_chunks([name for name, _ in GLOSSARIES]).ids())
    found = records(known)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in found)
    args.out.write_text(text, encoding="utf-8")
    for name, _ in GLOSSARIES:
        print(f"{name:<11} {sum(r['source'] == name for r in found):>4} terms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
