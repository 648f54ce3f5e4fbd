"""The recall tables' real corpus: extraction, chunk ids, the committed files, and embedding
it into the cache in resumable batches. Small slices only: CI never embeds 300,000 passages."""

from __future__ import annotations

import json
import lzma
import shutil
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lib.core import chunks
from lib.core.embeddings.base import ModelInfo, checked_vectors
from lib.core.embeddings.cache import EmbeddingCache
from lib.core.vectors import EmbedProgress, cached_vectors, embed_missing

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR / "scripts"))
import extract_chunks as ec  # noqa: E402

PAGE = """<!DOCTYPE html><html><head><title>{title}</title></head><body>
<div class="navheader"><a href="x.html">Prev</a> Up Next: this navigation is not prose at all.</div>
<div class="toc"><ul><li>Chapter one is listed here but only as a table of contents.</li></ul></div>
<div role="main">
<h1>{title}</h1>
<p>{body}</p>
<pre>SELECT * FROM code_is_left_out WHERE nobody = 'reads this as a sentence';</pre>
<div class="note"><h3>Note</h3><p>Admonitions are kept, e.g. this one, but their title is not a
heading. It stays under the page's own heading.</p></div>
<h2>Details</h2>
<ul><li>A list item that is long enough to count as a fragment of prose text</li>
<li>Too short.</li></ul>
</div></body></html>"""

BODY = (
    "The planner chooses an index scan when the query has an ORDER BY and a LIMIT. "
    "It compares the estimated costs of every path, i.e. the rows it expects to read. "
    "Dr. Smith wrote this sentence to test abbreviations. "
    "A fourth sentence always starts a new passage because three is the most one holds."
)


def manual(tmp_path: Path, pages: dict[str, tuple[str, str]]) -> ec.Source:
    html = tmp_path / "html"
    html.mkdir(exist_ok=True)
    for name, (title, body) in pages.items():
        (html / name).write_text(PAGE.format(title=title, body=body), encoding="utf-8")
    return ec.Source(
        "test", "test-doc", html, "PostgreSQL", "https://example.org/", ("role", "main")
    )


def extracted(source: ec.Source) -> tuple[bytes, list[dict]]:
    records = list(ec.extract(source, set()))
    return ec.xz_bytes(records), records


def passages_of(records: list[dict]) -> list[str]:
    return [p for r in records for _, ps in r["sections"] for p in ps]


def test_sentences_are_cut_at_sentence_ends_but_not_after_abbreviations():
    got = ec.sentences(BODY)
    assert len(got) == 4
    assert got[1].endswith("i.e. the rows it expects to read.")
    assert got[2].startswith("Dr. Smith")


def test_passages_hold_one_to_three_sentences_of_prose():
    found = ec.passages(BODY + " " + BODY)
    assert found and all(1 <= len(ec.sentences(p)) <= ec.MAX_SENTENCES for p in found)
    assert all(len(p) <= ec.MAX_SENTENCE for p in found)
    assert ec.passages("Too short.") == []
    assert ec.passages("x = 1; y = 2; z = f(x, y) + g(3, 4) - 5 * 6 / 7;") == []


def test_extraction_keeps_the_main_text_and_drops_navigation_and_code(tmp_path):
    _, records = extracted(manual(tmp_path, {"a.html": ("Planner", BODY)}))
    text = " ".join(passages_of(records))
    assert "The planner chooses an index scan" in text
    assert "Admonitions are kept" in text and "fragment of prose text" in text
    assert "navigation" not in text and "table of contents" not in text
    assert "code_is_left_out" not in text and "Too short" not in text
    headings = [h for _, (h, _) in enumerate(records[0]["sections"])]
    assert headings == ["Planner", "Details"], "'Note' is an admonition's title, not a heading"


def test_extraction_is_deterministic(tmp_path):
    source = manual(tmp_path, {"a.html": ("Planner", BODY), "b.html": ("Other", BODY[::-1])})
    first, _ = extracted(source)
    again, _ = extracted(source)
    assert first == again
    assert lzma.decompress(first).decode().count("\n") == 2


def test_chunk_ids_depend_on_the_text_alone(tmp_path):
    source = manual(tmp_path, {"b.html": ("Planner", BODY)})
    before = {chunks.chunk_id(p) for p in passages_of(extracted(source)[1])}
    other = "Vacuum reclaims storage occupied by dead tuples in every table it processes."
    source = manual(tmp_path, {"a.html": ("Vacuum", other)})  # a page sorted before it
    after = [chunks.chunk_id(p) for p in passages_of(extracted(source)[1])]
    assert before < set(after), "adding a page kept every id and added new ones"
    assert len(after) == len(set(after))
    assert chunks.chunk_id("x") == chunks.content_hash("x")[:16]


def test_duplicates_are_dropped_across_pages(tmp_path):
    source = manual(tmp_path, {"a.html": ("One", BODY), "b.html": ("Two", BODY.upper())})
    found = passages_of(extracted(source)[1])
    assert len(found) == len({p.lower() for p in found})


@pytest.fixture(scope="module")
def corpus():
    return chunks.read_chunks()


def test_the_committed_corpus_has_300k_passages_from_five_licensed_sources(corpus):
    sources = chunks.read_sources()
    assert [s.name for s in sources] == ["postgresql", "python", "sqlite", "git", "linux"]
    for s in sources:
        licence = chunks.CHUNKS_DIR / s.licence_file
        assert licence.is_file() and s.package in licence.name, s.name
        assert s.version and s.upstream.startswith("https://"), s.name
    assert len(corpus) >= 300_000
    counts = corpus.source_counts()
    for s in sources:  # less only by the few passages an earlier source also has
        assert 0.99 * s.passages <= counts[s.name] <= s.passages, s.name
    ids = corpus.ids()
    assert len(set(ids)) == len(ids), "ids are unique"


def test_committed_files_stay_small():
    total = sum(p.stat().st_size for p in chunks.CHUNKS_DIR.glob("*.jsonl.xz"))
    assert total < 15e6, f"{total / 1e6:.1f} MB of compressed text in data/chunks/"


def test_dataset_order_is_by_id_and_mixes_the_sources(corpus):
    order = corpus.dataset_order()
    ids = corpus.ids()
    first = [ids[i] for i in order[:2000]]
    assert first == sorted(first)
    counts = corpus.source_counts(order[:2000])
    assert all(c > 0 for c in counts.values()), counts


def test_a_chunk_says_where_it_comes_from(corpus):
    c = corpus.chunk(0)
    assert c.source == "postgresql" and c.doc.endswith(".html") and c.text
    assert c.id == corpus.ids()[0]


def test_a_slice_reads_only_the_first_passages_of_each_source():
    small = chunks.read_chunks(["sqlite", "git"], limit=50)
    assert len(small) == 100
    assert small.source_counts() == {"sqlite": 50, "git": 50}


@pytest.mark.skipif(
    not ec.SOURCES[2].html_dir.is_dir(), reason="sqlite3-doc is not installed (make chunk-sources)"
)
def test_the_committed_sqlite_file_is_what_the_script_makes_from_the_package(tmp_path):
    described = {s.name: s for s in chunks.read_sources()}["sqlite"]
    if ec.package_version("sqlite3-doc") != described.version:
        pytest.skip("another version of sqlite3-doc is installed")
    assert ec.main(["--source", "sqlite", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "sqlite.jsonl.xz").read_bytes() == (
        chunks.CHUNKS_DIR / "sqlite.jsonl.xz"
    ).read_bytes()


# ---------------------------------------------------------------------------------------
# Embedding into the cache


class CountingModel:
    """A deterministic stand-in for a text model that counts what it embeds, and can be
    told to fail after some batches (an interruption)."""

    def __init__(self, fail_after: int | None = None):
        self.info = ModelInfo("counting-test", 8, frozenset({"text"}), True, "test double")
        self.embedded: list[str] = []
        self.calls = 0
        self.fail_after = fail_after

    def embed(self, inputs, *, input_type="document"):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.calls += 1
        self.embedded.extend(inputs)
        out = np.zeros((len(inputs), 8), np.float32)
        for i, text in enumerate(inputs):
            seed = int(chunks.content_hash(text)[:8], 16)
            out[i] = np.random.default_rng(seed).standard_normal(8)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return checked_vectors(out, 8, len(inputs))


def test_an_interrupted_embedding_resumes_without_recomputing_finished_batches(tmp_path):
    texts = chunks.read_chunks(["git"], limit=230).texts(range(230))
    hashes = [chunks.content_hash(t) for t in texts]
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    seen: list[EmbedProgress] = []

    def run(model):
        return embed_missing(
            model, hashes, lambda idx: [texts[i] for i in idx], cache=cache, batch=50,
            progress=seen.append,
        )  # fmt: skip

    interrupted = CountingModel(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        run(interrupted)
    assert len(interrupted.embedded) == 150
    assert cache.rate("counting-test", min_texts=1) is not None, "its rate is kept"
    resumed = CountingModel()
    report = run(resumed)
    assert resumed.embedded == texts[150:], "only the unfinished batches are embedded"
    assert (report.cached, report.embedded) == (150, 80)
    again = CountingModel()
    assert run(again).embedded == 0 and again.embedded == []
    whole = CountingModel().embed(texts)
    assert np.array_equal(cached_vectors("counting-test", 8, hashes, cache), whole)
    assert seen[-1].done == seen[-1].todo == 80 and seen[-1].eta == 0


def test_under_a_guard_a_batch_another_process_embedded_meanwhile_is_not_embedded_again(
    tmp_path,
):
    texts = chunks.read_chunks(["git"], limit=150).texts(range(150))
    hashes = [chunks.content_hash(t) for t in texts]
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    other = CountingModel()
    entered = []

    @contextmanager
    def guard():
        entered.append(1)
        if len(entered) == 2:  # another process finished the second batch while we waited
            cache.put_many("counting-test", hashes[50:100], other.embed(texts[50:100]))
        yield

    model = CountingModel()
    report = embed_missing(
        model, hashes, lambda idx: [texts[i] for i in idx], cache=cache, batch=50, guard=guard
    )
    assert model.embedded == texts[:50] + texts[100:]
    assert report.embedded == 100 and len(entered) == 3
    assert len(cached_vectors("counting-test", 8, hashes, cache)) == 150


def test_missing_vectors_are_reported_not_invented(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    with pytest.raises(KeyError, match="2 of 2"):
        cached_vectors("counting-test", 8, ["a", "b"], cache)


def test_progress_reads_as_a_sentence_with_an_estimate():
    p = EmbedProgress(done=12_288, todo=295_000, cached=5_000, seconds=14.5)
    text = p.text()
    assert text.startswith("12,288 of 295,000 passages embedded (5,000 were cached), 847/s")
    assert "min" in text and "left" in text


def test_slices_do_not_touch_the_full_corpus_files(tmp_path):
    """read_chunks reads another directory when told (what the slice tests rely on)."""
    for f in ("sources.json", "git.jsonl.xz"):
        shutil.copy(chunks.CHUNKS_DIR / f, tmp_path / f)
    raw = json.loads((tmp_path / "sources.json").read_text())
    (tmp_path / "sources.json").write_text(json.dumps([s for s in raw if s["name"] == "git"]))
    small = chunks.read_chunks(directory=tmp_path, limit=10)
    assert len(small) == 10 and small.sources[0].name == "git"
    assert replace(small.sources[0], passages=0).name == "git"
