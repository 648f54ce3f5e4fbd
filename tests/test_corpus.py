"""The shipped corpus: lesson items, photos and their credits, manual passages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.core import corpus
from lib.core.corpus import DATA_DIR, CorpusError, CorpusItem, content_hash, load_items, themes

LESSON_TEXTS = {
    "a small cat",
    "tabby cat",
    "a puppy",
    "a red car",
    "a pickup truck",
    "a motorbike",
    "a highway",
}


@pytest.fixture(scope="module")
def items() -> list[CorpusItem]:
    return load_items()


def test_lesson_texts_present_and_flagged(items: list[CorpusItem]) -> None:
    lesson_texts = {i.text for i in items if i.lesson and i.kind == "text"}
    assert lesson_texts == LESSON_TEXTS
    assert any(i.lesson and i.kind == "image" for i in items)
    assert corpus.lesson_items(items) == [i for i in items if i.lesson]


def test_size_and_themes(items: list[CorpusItem]) -> None:
    assert len(items) >= 80
    ts = themes(items)
    assert len(ts) >= 6
    assert len(ts) == len(set(ts))
    for theme in ts:
        assert sum(i.theme == theme and i.kind == "text" for i in items) >= 5, theme


def test_ids_unique_slugs(items: list[CorpusItem]) -> None:
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids))
    for i in ids:
        assert i == i.lower() and " " not in i and i.strip("-") == i


def test_text_lengths_vary(items: list[CorpusItem]) -> None:
    words = [len(i.text.split()) for i in items if i.kind == "text"]
    assert min(words) <= 2
    assert max(words) >= 20
    assert len({i.text for i in items if i.kind == "text"}) == len(words)


def test_every_image_opens_and_matches_a_text_theme(items: list[CorpusItem]) -> None:
    text_themes = {i.theme for i in items if i.kind == "text"}
    photos = [i for i in items if i.kind == "image"]
    assert len(photos) >= 8
    for item in photos:
        assert item.image_path is not None and item.image_path.is_absolute()
        im = item.load_image()
        assert im.mode == "RGB"
        assert max(im.size) <= 640 and min(im.size) >= 64
        assert item.theme in text_themes


def test_text_item_has_no_image(items: list[CorpusItem]) -> None:
    text = next(i for i in items if i.kind == "text")
    assert text.image is None and text.image_path is None
    with pytest.raises(ValueError):
        text.load_image()


def test_every_photo_credited() -> None:
    credits = (DATA_DIR / "photos" / "CREDITS.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in (DATA_DIR / "photos").glob("*.jpg"))
    assert len(files) >= 8
    for name in files:
        line = next((ln for ln in credits.splitlines() if f"`{name}`" in ln), "")
        assert line, f"{name} not in CREDITS.md"
        assert "CC0" in line or "ublic domain" in line or "copyright restrictions" in line
    used = {Path(i.image).name for i in load_items() if i.image}
    assert used == set(files)


def test_content_hash_stable_and_distinct(items: list[CorpusItem]) -> None:
    hashes = [content_hash(i) for i in items]
    assert hashes == [content_hash(i) for i in load_items()]
    assert len(set(hashes)) == len(hashes)
    assert all(len(h) == 64 for h in hashes)
    a = CorpusItem("x", "text", "t", "a small cat", None, False)
    b = CorpusItem("y", "text", "other", "a small cat", None, True)
    assert content_hash(a) == content_hash(b)  # only kind + content count
    c = CorpusItem("x", "text", "t", "a small cat.", None, False)
    assert content_hash(a) != content_hash(c)
    photo = next(i for i in items if i.kind == "image")
    recaptioned = CorpusItem(photo.id, "image", photo.theme, "new caption", photo.image, False)
    assert content_hash(recaptioned) == content_hash(photo)


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "items.json"
    p.write_text(json.dumps(rows), encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "rows",
    [
        [{"id": "a", "kind": "text", "theme": "t", "text": "x", "lesson": False}] * 2,
        [{"id": "a", "kind": "video", "theme": "t", "text": "x", "lesson": False}],
        [{"id": "a", "kind": "image", "theme": "t", "text": "x", "image": "photos/nope.jpg"}],
        [{"id": "a", "kind": "image", "theme": "t", "text": "x", "image": "../pyproject.toml"}],
        [{"id": "", "kind": "text", "theme": "t", "text": "x"}],
        [{"id": "a", "kind": "text", "theme": "t", "text": "x", "lesson": "yes"}],
        {"id": "a"},
    ],
)
def test_load_items_rejects_bad_files(tmp_path: Path, rows: list[dict]) -> None:
    with pytest.raises(CorpusError):
        load_items(_write(tmp_path, rows))


@pytest.fixture(scope="module")
def passages() -> list[corpus.Passage]:
    return corpus.load_passages()


def test_passages_count_and_ids(passages: list[corpus.Passage]) -> None:
    assert 5_000 <= len(passages) <= 15_000
    assert [p.id for p in passages] == list(range(len(passages)))
    assert (DATA_DIR / "pg_docs" / "passages.jsonl.gz").stat().st_size < 6_000_000


def test_passages_fields_and_lengths(passages: list[corpus.Passage]) -> None:
    for p in passages:
        assert p.page.endswith(".html") and p.title.strip() and p.section.strip()
        assert 100 <= len(p.text) <= 1600, (p.id, len(p.text))
        assert p.text == p.text.strip()
    lengths = sorted(len(p.text) for p in passages)
    assert 300 <= lengths[len(lengths) // 2] <= 1200
    assert sum(300 <= n <= 1250 for n in lengths) / len(lengths) > 0.95


def test_passages_unique_and_real(passages: list[corpus.Passage]) -> None:
    texts = [" ".join(p.text.lower().split()) for p in passages]
    assert len(set(texts)) == len(texts)
    pages = {p.page for p in passages}
    assert len(pages) > 500
    assert "sql-createindex.html" in pages
    assert any("index" in t and "btree" in t.replace("-", "") for t in texts)


def test_load_passages_limit(passages: list[corpus.Passage]) -> None:
    assert corpus.load_passages(limit=5) == passages[:5]
    assert corpus.load_passages(limit=0) == []
    with pytest.raises(ValueError):
        corpus.load_passages(limit=-1)


def test_pg_docs_licence() -> None:
    text = (DATA_DIR / "pg_docs" / "LICENSE").read_text(encoding="utf-8")
    assert "PostgreSQL Global Development Group" in text
    assert "Permission to use, copy, modify, and distribute" in text
