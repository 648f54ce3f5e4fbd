"""Extract text passages from the PostgreSQL manual (HTML) into data/pg_docs/.

Needs the Debian package with the manual's HTML (``apt-get install -y postgresql-doc-15``)
and nothing but the standard library:

    .venv/bin/python scripts/extract_pg_docs.py [--html-dir DIR] [--out-dir DIR]

Every page is read in sorted order; the page title, section headings and the text of
paragraphs, list items, definition lists, admonitions and table rows (one row, cells
joined by dashes, is one paragraph) are kept, while navigation, tables of contents,
table headers and code blocks (``<pre>``) are dropped. Paragraphs are packed,
in order and within one page, into passages of roughly 300-1200 characters, split only at
paragraph boundaries (or sentence boundaries for a single over-long paragraph); exact
duplicates are dropped. The output, ``passages.jsonl.gz``, is byte-for-byte reproducible
(sorted input, gzip mtime 0). The PostgreSQL licence is written beside it as ``LICENSE``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HTML_DIR = Path("/usr/share/doc/postgresql-doc-15/html")
DEFAULT_OUT_DIR = ROOT / "data" / "pg_docs"
COPYRIGHT_FILE = Path("/usr/share/doc/postgresql-doc-15/copyright")

MIN_CHARS = 300
MAX_CHARS = 1200
# A passage shorter than this that cannot be merged with a neighbour is dropped.
DROP_BELOW = 120

# Pages that are not prose about PostgreSQL itself.
SKIP_PAGES = re.compile(
    r"^(release-.*|bookindex|legalnotice|index|biblio|acronyms|sql-keywords-appendix)\.html$"
)

BLOCK_TAGS = frozenset({"p", "li", "dd", "dt", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"})
HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
SKIP_TAGS = frozenset({"pre", "thead", "script", "style", "head"})
SKIP_DIV_CLASSES = frozenset(
    {
        "navheader",
        "navfooter",
        "toc",
        "list-of-tables",
        "list-of-figures",
        "list-of-examples",
        "refsynopsisdiv",
    }
)
# Admonition boxes: their text is kept, their "Note"/"Tip" title is not a section heading.
ADMONITION_CLASSES = frozenset({"note", "tip", "caution", "warning", "important"})
CODE_TAGS = frozenset({"code", "tt", "kbd", "samp", "var"})
VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base"})

WS = re.compile(r"\s+")
SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z(\"'])")


@dataclass
class Block:
    """A run of text from one block element: a heading or a paragraph-like block."""

    kind: str  # "heading" | "para" | "term"
    text: str


class PageParser(HTMLParser):
    """Turns one manual page into its title and an ordered list of text blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.blocks: list[Block] = []
        self._stack: list[tuple[str, bool, bool]] = []  # (tag, opens skip, opens admonition)
        self._admonition = 0
        self._skip = 0
        self._code = 0
        self._in_title = False
        self._buf: list[str] = []
        self._plain: list[str] = []
        self._block_tag: list[str] = []
        self._row = 0  # inside a table row: the whole row is one block

    # -- helpers -------------------------------------------------------------------------
    def _flush(self) -> None:
        text = WS.sub(" ", "".join(self._buf)).strip()
        plain = WS.sub(" ", "".join(self._plain)).strip()
        self._buf, self._plain = [], []
        if not text:
            return
        tag = self._block_tag[-1] if self._block_tag else "p"
        if tag in HEADING_TAGS:
            if not self._admonition:
                self.blocks.append(Block("heading", text))
        elif tag == "dt":
            self.blocks.append(Block("term", text))
        elif sum(c.isalpha() for c in plain) >= 12:  # not a code-only block
            self.blocks.append(Block("para", text))

    # -- HTMLParser hooks ----------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            if tag == "br" and not self._skip:
                self._buf.append(" ")
                self._plain.append(" ")
            return
        classes = set((dict(attrs).get("class") or "").split())
        opens_skip = tag in SKIP_TAGS or (tag == "div" and bool(classes & SKIP_DIV_CLASSES))
        opens_admonition = tag == "div" and bool(classes & ADMONITION_CLASSES)
        self._stack.append((tag, opens_skip, opens_admonition))
        self._admonition += opens_admonition
        if opens_skip:
            if not self._skip:
                self._flush()
            self._skip += 1
            return
        if tag == "title":
            self._in_title = True
        if self._skip:
            return
        if tag in CODE_TAGS:
            self._code += 1
        if tag == "tr":
            self._flush()
            self._row += 1
            self._block_tag.append("tr")
            return
        if self._row:
            if tag in ("td", "th") and self._buf:
                self._buf.append(" — ")
                self._plain.append(" — ")
            elif tag in BLOCK_TAGS or tag == "div":
                self._buf.append(" ")
                self._plain.append(" ")
            return
        if tag in BLOCK_TAGS or tag == "div":
            self._flush()
            if tag in BLOCK_TAGS:
                self._block_tag.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS:
            return
        # Pop to the matching open tag; tolerate stray end tags.
        if not any(t == tag for t, _, _ in self._stack):
            return
        while self._stack:
            t, opened_skip, opened_admonition = self._stack.pop()
            self._admonition -= opened_admonition
            if opened_skip:
                self._skip -= 1
            elif not self._skip:
                if t in CODE_TAGS:
                    self._code = max(0, self._code - 1)
                if t == "tr":
                    self._flush()
                    self._row = max(0, self._row - 1)
                    if self._block_tag:
                        self._block_tag.pop()
                elif self._row:
                    pass
                elif t in BLOCK_TAGS or t == "div":
                    self._flush()
                    if t in BLOCK_TAGS and self._block_tag:
                        self._block_tag.pop()
            if t == "title":
                self._in_title = False
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip:
            return
        self._buf.append(data)
        if not self._code:
            self._plain.append(data)

    def close(self) -> None:
        super().close()
        self._flush()
        self.title = WS.sub(" ", self.title).strip()


@dataclass
class Para:
    """One paragraph with the section heading it sits under."""

    section: str
    text: str


def page_paragraphs(blocks: list[Block], title: str) -> list[Para]:
    """Attach headings to paragraphs and fold each definition term into its description."""
    out: list[Para] = []
    section = title
    term: str | None = None
    for b in blocks:
        if b.kind == "heading":
            section, term = b.text, None
        elif b.kind == "term":
            term = b.text if term is None else f"{term}, {b.text}"
        else:
            text = f"{term}: {b.text}" if term else b.text
            term = None
            out.append(Para(section, text))
    return out


def split_long(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Split an over-long paragraph at sentence ends (at spaces as a last resort)."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    for sentence in SENTENCE_END.split(text):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    chunks: list[str] = []
    cur = ""
    for piece in pieces:
        if cur and len(cur) + 1 + len(piece) > limit:
            chunks.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    if cur:
        chunks.append(cur)
    # Avoid a tiny last chunk: rebalance it with the one before.
    if len(chunks) >= 2 and len(chunks[-1]) < MIN_CHARS:
        merged = f"{chunks[-2]} {chunks[-1]}"
        if len(merged) <= limit * 1.25:
            chunks[-2:] = [merged]
    return chunks


def pack(paras: list[Para]) -> list[tuple[str, str]]:
    """Pack a page's paragraphs, in order, into (section, text) passages."""
    units: list[Para] = []
    for p in paras:
        units.extend(Para(p.section, t) for t in split_long(p.text))
    passages: list[list[Para]] = []
    cur: list[Para] = []
    size = 0
    for u in units:
        add = len(u.text) + (2 if cur else 0)
        new_section = bool(cur) and u.section != cur[0].section
        # Close the current passage when it is big enough and the next unit would overflow
        # it or would start a new section.
        if cur and size >= MIN_CHARS and (size + add > MAX_CHARS or new_section):
            passages.append(cur)
            cur, size, add = [], 0, len(u.text)
        elif cur and size + add > MAX_CHARS:
            passages.append(cur)  # too small but cannot grow: settled below
            cur, size, add = [], 0, len(u.text)
        cur.append(u)
        size += add
    if cur:
        passages.append(cur)
    out: list[tuple[str, str]] = []
    for group in passages:
        text = "\n\n".join(u.text for u in group)
        if len(text) < MIN_CHARS and out and len(out[-1][1]) + 2 + len(text) <= MAX_CHARS:
            out[-1] = (out[-1][0], out[-1][1] + "\n\n" + text)
            continue
        if len(text) >= DROP_BELOW:
            out.append((group[0].section, text))
    return out


def normalize(text: str) -> str:
    """Key for duplicate detection."""
    return WS.sub(" ", text).strip().lower()


def extract(html_dir: Path) -> list[dict[str, object]]:
    """All passages of the manual under html_dir, in stable order."""
    pages = sorted(p for p in html_dir.glob("*.html") if not SKIP_PAGES.match(p.name))
    if not pages:
        raise SystemExit(f"no HTML pages under {html_dir}: apt-get install -y postgresql-doc-15")
    seen: set[str] = set()
    rows: list[dict[str, object]] = []
    for page in pages:
        parser = PageParser()
        parser.feed(page.read_text(encoding="utf-8"))
        parser.close()
        title = parser.title or page.stem
        for section, text in pack(page_paragraphs(parser.blocks, title)):
            key = normalize(text)
            if key in seen:
                continue
            seen.add(key)
            row = {"id": len(rows), "page": page.name, "title": title, "section": section}
            row["text"] = text
            rows.append(row)
    return rows


def write_jsonl_gz(rows: list[dict[str, object]], path: Path) -> None:
    """Write rows as gzip'd JSON lines with no timestamp or file name in the header."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        for row in rows:
            gz.write(json.dumps(row, ensure_ascii=False, sort_keys=False).encode("utf-8"))
            gz.write(b"\n")
    path.write_bytes(raw.getvalue())


def licence_text(copyright_file: Path, html_dir: Path) -> str:
    """The PostgreSQL licence text from the doc package's copyright file.

    The copyright lines come from the manual's own legal notice (legalnotice.html), whose
    years are current; the Debian file's lines are the fallback.
    """
    text = copyright_file.read_text(encoding="utf-8")
    files_star = re.search(r"^Files: \*\nCopyright: (.*?)\nLicense: PostgreSQL$", text, re.M | re.S)
    body = re.search(r"^License: PostgreSQL\n((?: .*\n)+)", text, re.M)
    if not files_star or not body:
        raise SystemExit(f"cannot find the PostgreSQL licence in {copyright_file}")
    holders = [ln.strip() for ln in files_star.group(1).splitlines()]
    notice = html_dir / "legalnotice.html"
    if notice.is_file():
        found = re.findall(r"Portions Copyright ©\s*([^<]+?)\s*<", notice.read_text("utf-8"))
        if found:
            holders = [f"Portions Copyright (c) {h}" for h in found]
    paragraphs = [ln[1:] if ln.strip() != "." else "" for ln in body.group(1).splitlines()]
    return (
        "PostgreSQL Database Management System\n"
        "(also known as Postgres, formerly known as Postgres95)\n\n"
        + "\n".join(holders)
        + "\n\n"
        + "\n".join(paragraphs).rstrip()
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Extract, write passages.jsonl.gz and LICENSE, print a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html-dir", type=Path, default=DEFAULT_HTML_DIR)
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    ap.add_argument("--copyright", type=Path, default=COPYRIGHT_FILE)
    args = ap.parse_args(argv)

    rows = extract(args.html_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "passages.jsonl.gz"
    write_jsonl_gz(rows, out)
    licence = licence_text(args.copyright, args.html_dir)
    (args.out_dir / "LICENSE").write_text(licence, encoding="utf-8")
    lengths = sorted(len(str(r["text"])) for r in rows)
    pages = len({r["page"] for r in rows})
    print(
        f"{len(rows)} passages from {pages} pages -> {out} ({out.stat().st_size / 1e6:.2f} MB); "
        f"chars min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
