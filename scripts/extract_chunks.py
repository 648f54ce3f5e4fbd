"""Extract the real corpus of the recall tables: 1–3 sentence passages of five manuals.

    make chunk-sources                          # the Debian packages it reads (apt-get)
    .venv/bin/python scripts/extract_chunks.py  # rewrites data/chunks/
    .venv/bin/python scripts/extract_chunks.py --source sqlite --out-dir /tmp/chunks

| source     | Debian package    | licence                                        |
| ---------- | ----------------- | ---------------------------------------------- |
| postgresql | postgresql-doc-15 | PostgreSQL Licence                             |
| python     | python3.11-doc    | PSF Licence (Python 3.11 documentation)        |
| sqlite     | sqlite3-doc       | public domain                                  |
| git        | git-doc           | GPL-2                                          |
| linux      | linux-doc-6.1     | GPL-2 (a file's own SPDX line, when it has one) |

Each source's HTML pages are read in sorted order. From the page's main content (navigation,
tables of contents, code blocks, scripts and headers left out) every paragraph-like block (a
paragraph, list item, definition, table cell, admonition) is cut into sentences, and the
sentences of one block are grouped, in order, into passages of 1–3 sentences (at most
MAX_CHARS characters unless one sentence is longer). A passage is kept when it reads as prose:
at least MIN_WORDS words, mostly letters, ending with a full stop, question or exclamation
mark (or, for a list item or a table cell, at least MIN_WORDS_FRAGMENT words). Within a
source, exact duplicates (after folding case and spaces) are dropped, the first one kept; each
source's file is made from its own package alone (lib/core/chunks.py drops a passage that an
earlier source already has).

Output, in --out-dir: one ``<source>.jsonl.xz`` per source, one JSON line per page
(``{"doc": path, "title": …, "sections": [[heading, [passage, …]], …]}``, plus ``"spdx"``
where the page's source file names its licence); ``sources.json`` (each source's package,
version, upstream, licence, counts); ``licenses/`` (each package's Debian copyright file and
the GPL-2 text they refer to). Same packages in, same bytes out: sorted input, no
timestamps, xz at a fixed preset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ROOT / "data" / "chunks"
DOC = Path("/usr/share/doc")
GPL2 = Path("/usr/share/common-licenses/GPL-2")

MAX_SENTENCES = 3
TARGET_CHARS = 45  # a passage this long is closed (short sentences join the next ones)
MAX_CHARS = 320  # no passage of 2–3 sentences is longer
MAX_SENTENCE = 600  # a longer single sentence is not a passage (tables, run-on lists)
MIN_CHARS = 40
MIN_WORDS = 5
# A block that does not end like a sentence (a list item, a table cell, a term's
# description) is kept when it has at least this many words.
MIN_WORDS_FRAGMENT = 8
MIN_LETTERS = 0.6  # share of letters among the passage's non-space characters
XZ_PRESET = 9 | lzma.PRESET_EXTREME


@dataclass(frozen=True)
class Source:
    """One manual: where its pages are, which element holds a page's text, what to skip."""

    name: str
    package: str
    html_dir: Path
    licence: str
    upstream: str
    # (attribute, value) of the element that holds a page's content; None: the whole page
    root: tuple[str, str] | None = None
    skip_pages: str = r"^$"  # pages (paths under html_dir) that are not prose
    sources_dir: str | None = None  # where a page's reStructuredText source is (for SPDX)


SOURCES: tuple[Source, ...] = (
    Source(
        "postgresql",
        "postgresql-doc-15",
        DOC / "postgresql-doc-15" / "html",
        "PostgreSQL",
        "https://www.postgresql.org/docs/15/",
        skip_pages=r"^(release-.*|bookindex|legalnotice|index|biblio|acronyms"
        r"|sql-keywords-appendix)\.html$",
    ),
    Source(
        "python",
        "python3.11-doc",
        DOC / "python3.11" / "html",
        "PSF-2.0",
        "https://docs.python.org/3.11/",
        root=("role", "main"),
        skip_pages=r"^(genindex.*|py-modindex|search|contents|copyright|license|about|bugs"
        r"|download|whatsnew/changelog)\.html$",
    ),
    Source(
        "sqlite",
        "sqlite3-doc",
        DOC / "sqlite3",
        "public-domain",
        "https://www.sqlite.org/docs.html",
        skip_pages=r"^(changes|chronology|news|oldnews|releaselog/.*|doc_.*_crossref|sitemap"
        r"|keyword_index|docs|index|copyright-release|toc)\.html$",
    ),
    Source(
        "git",
        "git-doc",
        DOC / "git-doc",
        "GPL-2.0-only",
        "https://git-scm.com/docs",
        root=("id", "content"),
    ),
    Source(
        "linux",
        "linux-doc-6.1",
        DOC / "linux-doc-6.1" / "html",
        "GPL-2.0-only",
        "https://www.kernel.org/doc/html/v6.1/",
        root=("role", "main"),
        skip_pages=r"^(genindex|search|_.*|translations/.*)\.html$|^(_|translations/)",
        sources_dir="_sources",
    ),
)

BLOCK_TAGS = frozenset(
    {"p", "li", "dd", "dt", "td", "th", "blockquote", "caption", "figcaption", "div", "section"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "ul", "ol", "dl", "article", "body"}
)
HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
SKIP_TAGS = frozenset({"pre", "script", "style", "head", "nav", "header", "footer", "thead"})
# Elements whose class names one of these (as a whole word) hold navigation, not prose.
SKIP_CLASSES = frozenset(
    {
        "navheader", "navfooter", "toc", "toctree-wrapper", "contents", "sphinxsidebar",
        "related", "footer", "headerlink", "highlight", "breadcrumbs", "wy-breadcrumbs",
        "rst-footer-buttons", "nosearch", "menu", "searchmenu", "fancy_toc", "refsynopsisdiv",
        "list-of-tables", "list-of-figures", "list-of-examples", "literal-block-wrapper",
        "sig", "footnotes", "mobile-nav", "inline-search",
    }
)  # fmt: skip
# Boxes whose own title ("Note", "Warning") is not a heading of the text around them.
ADMONITION_CLASSES = frozenset({"note", "tip", "caution", "warning", "important", "admonition"})
VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"})

WS = re.compile(r"\s+")
# A sentence may end at . ! or ? (and closing quotes or brackets) before a space and a capital,
# a digit or an opening quote or bracket.
BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])")
ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al approx resp incl viz ca esp mr mrs ms dr st no fig figs sec vol"
    " inc ltd jr sr ver eq ref refs min max dept univ corp ex".split()
)
ENDS_SENTENCE = re.compile(r"[.!?:][\"')\]]*$")


@dataclass
class Page:
    title: str = ""
    sections: list[tuple[str, list[str]]] = field(default_factory=list)


class PageText(HTMLParser):
    """The title and the text blocks (with the heading above each) of one HTML page."""

    def __init__(self, root: tuple[str, str] | None) -> None:
        super().__init__(convert_charrefs=True)
        self.root = root
        self.title = ""
        self.blocks: list[tuple[str, str]] = []  # (kind: "heading" | "text", text)
        self.saw_root = False
        # (tag, opens skip, opens root, opens admonition)
        self._stack: list[tuple[str, bool, bool, bool]] = []
        self._skip = 0
        self._admonition = 0
        self._inside_root = 0
        self._in_title = False
        self._buf: list[str] = []
        self._heading = 0

    def _collecting(self) -> bool:
        return not self._skip and (self.root is None or self._inside_root > 0)

    def _flush(self) -> None:
        text = WS.sub(" ", "".join(self._buf)).strip()
        self._buf = []
        if text and not (self._heading and self._admonition):
            self.blocks.append(("heading" if self._heading else "text", text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            if tag == "br":
                self._buf.append(" ")
            return
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        opens_skip = tag in SKIP_TAGS or any(c in SKIP_CLASSES for c in classes)
        opens_root = self.root is not None and a.get(self.root[0]) == self.root[1]
        opens_admonition = any(c in ADMONITION_CLASSES for c in classes)
        self._stack.append((tag, opens_skip, opens_root, opens_admonition))
        self._admonition += opens_admonition
        if tag == "title":
            self._in_title = True
        if opens_root:
            self.saw_root = True
            self._inside_root += 1
        if opens_skip:
            if self._collecting():
                self._flush()
            self._skip += 1
            return
        if tag in BLOCK_TAGS:
            self._flush()
            if tag in HEADING_TAGS:
                self._heading += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS or not any(entry[0] == tag for entry in self._stack):
            return
        while self._stack:
            t, opened_skip, opened_root, opened_admonition = self._stack.pop()
            if opened_skip:
                self._skip -= 1
            elif t in BLOCK_TAGS:
                self._flush()
                if t in HEADING_TAGS:
                    self._heading = max(0, self._heading - 1)
            if opened_root:
                self._flush()
                self._inside_root -= 1
            self._admonition -= opened_admonition
            if t == "title":
                self._in_title = False
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._collecting():
            self._buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()
        self.title = WS.sub(" ", self.title).strip()


def sentences(text: str) -> list[str]:
    """`text` cut at sentence ends (not after a known abbreviation or a single initial)."""
    out: list[str] = []
    start = 0
    for m in BOUNDARY.finditer(text):
        head = text[start : m.start()].rstrip("\"')]")
        last = head.rsplit(None, 1)[-1] if head.split() else ""
        word = last.rstrip(".!?").lstrip("(\"'[").lower()
        if last.endswith(".") and (word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
            continue
        out.append(text[start : m.start()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def reads_as_prose(passage: str) -> bool:
    """Long enough, mostly letters, ending like a sentence."""
    words = len(passage.split())
    if len(passage) < MIN_CHARS or words < MIN_WORDS:
        return False
    if not ENDS_SENTENCE.search(passage) and words < MIN_WORDS_FRAGMENT:
        return False
    chars = [c for c in passage if not c.isspace()]
    return sum(c.isalpha() for c in chars) >= MIN_LETTERS * len(chars)


def passages(text: str) -> list[str]:
    """The 1–3 sentence passages of one block of text, in order."""
    out: list[str] = []
    group: list[str] = []
    for s in sentences(text):
        if group and len(" ".join([*group, s])) > MAX_CHARS:
            out.append(" ".join(group))
            group = []
        group.append(s)
        if len(group) == MAX_SENTENCES or len(" ".join(group)) >= TARGET_CHARS:
            out.append(" ".join(group))
            group = []
    if group:
        out.append(" ".join(group))
    return [p for p in out if len(p) <= MAX_SENTENCE and reads_as_prose(p)]


def read_page(path: Path, root: tuple[str, str] | None) -> Page:
    """A page's title and its passages grouped under their headings."""
    html = path.read_text(encoding="utf-8", errors="replace")
    parser = PageText(root)
    parser.feed(html)
    parser.close()
    if root is not None and not parser.saw_root:  # a page without the usual layout
        parser = PageText(None)
        parser.feed(html)
        parser.close()
    page = Page(parser.title)
    heading = parser.title
    for kind, text in parser.blocks:
        if kind == "heading":
            heading = text.rstrip("¶#").strip()
            continue
        found = passages(text)
        if not found:
            continue
        if page.sections and page.sections[-1][0] == heading:
            page.sections[-1][1].extend(found)
        else:
            page.sections.append((heading, found))
    return page


SPDX = re.compile(r"SPDX-License-Identifier:\s*(.+?)\s*(?:\*/|-->)?\s*$", re.M)


def spdx_of(source: Source, doc: str) -> str | None:
    """The SPDX identifier in the first lines of a page's reStructuredText source, if any."""
    if source.sources_dir is None:
        return None
    rst = source.html_dir / source.sources_dir / (doc.removesuffix(".html") + ".rst.txt")
    if not rst.is_file():
        return None
    with rst.open(encoding="utf-8", errors="replace") as f:
        head = "".join(f.readline() for _ in range(5))
    m = SPDX.search(head)
    return m.group(1).strip() if m else None


def page_paths(source: Source) -> list[str]:
    """The source's pages (paths under its HTML directory), sorted, skipped ones left out."""
    if not source.html_dir.is_dir():
        raise SystemExit(
            f"{source.html_dir} is missing: `make chunk-sources` installs {source.package}"
        )
    skip = re.compile(source.skip_pages)
    found = (p.relative_to(source.html_dir).as_posix() for p in source.html_dir.rglob("*.html"))
    return sorted(d for d in found if not skip.search(d))


def normalized(text: str) -> str:
    return WS.sub(" ", text).strip().lower()


def extract(source: Source, seen: set[bytes]) -> Iterator[dict[str, object]]:
    """One record per page that has at least one passage not `seen` before (updates `seen`)."""
    for doc in page_paths(source):
        page = read_page(source.html_dir / doc, source.root)
        sections = []
        for heading, found in page.sections:
            fresh = []
            for p in found:
                key = hashlib.sha256(normalized(p).encode()).digest()
                if key not in seen:
                    seen.add(key)
                    fresh.append(p)
            if fresh:
                sections.append([heading, fresh])
        if sections:
            record: dict[str, object] = {"doc": doc, "title": page.title or doc}
            spdx = spdx_of(source, doc)
            if spdx:
                record["spdx"] = spdx
            record["sections"] = sections
            yield record


def xz_bytes(records: list[dict[str, object]]) -> bytes:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return lzma.compress(lines.encode("utf-8"), format=lzma.FORMAT_XZ, preset=XZ_PRESET)


def package_version(package: str) -> str | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    ap.add_argument(
        "--source",
        action="append",
        choices=[s.name for s in SOURCES],
        help="extract only these sources (repeatable)",
    )
    args = ap.parse_args(argv)
    chosen = [s for s in SOURCES if not args.source or s.name in args.source]
    out = args.out_dir
    (out / "licenses").mkdir(parents=True, exist_ok=True)
    described = []
    total = 0
    for source in chosen:
        records = list(extract(source, set()))
        data = xz_bytes(records)
        path = out / f"{source.name}.jsonl.xz"
        path.write_bytes(data)
        n = sum(len(ps) for r in records for _, ps in r["sections"])  # type: ignore[misc]
        chars = sum(len(p) for r in records for _, ps in r["sections"] for p in ps)  # type: ignore[misc]
        total += n
        copyright_file = DOC / source.package / "copyright"
        if copyright_file.is_file():
            shutil.copyfile(copyright_file, out / "licenses" / f"{source.package}.copyright")
        described.append(
            {
                "name": source.name,
                "package": source.package,
                "version": package_version(source.package),
                "html_dir": str(source.html_dir),
                "upstream": source.upstream,
                "licence": source.licence,
                "licence_file": f"licenses/{source.package}.copyright",
                "pages": len(records),
                "passages": n,
                "characters": chars,
                "file": path.name,
                "bytes": len(data),
            }
        )
        print(
            f"{source.name:<11} {len(records):>6,} pages {n:>9,} passages "
            f"{chars / 1e6:>7.1f} M chars -> {path.name} ({len(data) / 1e6:.1f} MB)",
            flush=True,
        )
    if GPL2.is_file():
        shutil.copyfile(GPL2, out / "licenses" / "GPL-2")
    (out / "sources.json").write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")
    size = sum(d["bytes"] for d in described)
    print(f"{total:,} passages in {size / 1e6:.1f} MB of xz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
