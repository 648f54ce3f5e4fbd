"""The shipped corpus: lesson items (texts and photos) and PostgreSQL manual passages.

Everything here reads files under ``data/`` and nothing else; no Streamlit, no database.

    >>> from lib.core.corpus import load_items, themes, load_passages
    >>> items = load_items()
    >>> [i.text for i in items if i.lesson][:3]
    ['a small cat', 'tabby cat', 'a puppy']
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image

DATA_DIR: Path = Path(__file__).resolve().parents[2] / "data"
ITEMS_PATH: Path = DATA_DIR / "corpus" / "items.json"
PASSAGES_PATH: Path = DATA_DIR / "pg_docs" / "passages.jsonl.gz"

Kind = Literal["text", "image"]
KINDS: frozenset[str] = frozenset({"text", "image"})


class CorpusError(ValueError):
    """The shipped corpus files are missing or malformed; the message says where."""


@dataclass(frozen=True)
class CorpusItem:
    """One item of the lesson corpus: a text to embed, or a photo with a display caption."""

    id: str
    kind: Kind
    theme: str
    text: str
    image: str | None
    lesson: bool

    @property
    def image_path(self) -> Path | None:
        """Absolute path of the photo, or None for a text item."""
        return DATA_DIR / self.image if self.image else None

    def load_image(self) -> Image.Image:
        """The photo as an RGB PIL image (fully loaded, file closed)."""
        path = self.image_path
        if path is None:
            raise ValueError(f"item {self.id!r} is a text item and has no image")
        with Image.open(path) as im:
            return im.convert("RGB")


@dataclass(frozen=True)
class Passage:
    """One passage of the PostgreSQL manual."""

    id: int
    page: str
    title: str
    section: str
    text: str


def _parse_item(raw: object, n: int) -> CorpusItem:
    """Build and check one item from its JSON object (n is its index, for messages)."""
    if not isinstance(raw, dict):
        raise CorpusError(f"items.json[{n}] is not an object")
    where = f"items.json[{n}] ({raw.get('id')!r})"
    for key, typ in (("id", str), ("kind", str), ("theme", str), ("text", str)):
        if not isinstance(raw.get(key), typ) or not raw[key].strip():
            raise CorpusError(f"{where}: {key!r} must be a non-empty string")
    kind = raw["kind"]
    if kind not in KINDS:
        raise CorpusError(f"{where}: kind {kind!r} is not one of {sorted(KINDS)}")
    lesson = raw.get("lesson", False)
    if not isinstance(lesson, bool):
        raise CorpusError(f"{where}: 'lesson' must be true or false")
    image = raw.get("image")
    if kind == "image":
        if not isinstance(image, str) or not image:
            raise CorpusError(f"{where}: an image item needs an 'image' path")
        path = DATA_DIR / image
        if not path.is_file() or DATA_DIR.resolve() not in path.resolve().parents:
            raise CorpusError(f"{where}: image file {image!r} not found under {DATA_DIR}")
    elif image is not None:
        raise CorpusError(f"{where}: a text item must not have an 'image'")
    return CorpusItem(
        id=raw["id"], kind=kind, theme=raw["theme"], text=raw["text"], image=image, lesson=lesson
    )


@lru_cache(maxsize=1)
def _load_items_cached(path: Path, mtime_ns: int) -> tuple[CorpusItem, ...]:
    """Parse and validate items.json (cached per file version)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise CorpusError(f"{path} must hold a JSON list")
    items = tuple(_parse_item(r, n) for n, r in enumerate(raw))
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise CorpusError(f"duplicate item id {item.id!r} in {path}")
        seen.add(item.id)
    return items


def load_items(path: Path = ITEMS_PATH) -> list[CorpusItem]:
    """All corpus items in file order, validated (unique ids, valid kinds, images exist)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    return list(_load_items_cached(path, mtime))


def lesson_items(items: Iterable[CorpusItem] | None = None) -> list[CorpusItem]:
    """The items the lesson itself shows (``lesson: true``), in file order."""
    return [i for i in (load_items() if items is None else items) if i.lesson]


def themes(items: Iterable[CorpusItem]) -> list[str]:
    """Distinct themes in order of first appearance."""
    return list(dict.fromkeys(i.theme for i in items))


def load_passages(limit: int | None = None, path: Path = PASSAGES_PATH) -> list[Passage]:
    """PostgreSQL manual passages in id order; only the first ``limit`` if given."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    out: list[Passage] = []
    if limit == 0:
        return out
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                out.append(Passage(d["id"], d["page"], d["title"], d["section"], d["text"]))
                if limit is not None and len(out) >= limit:
                    break
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise CorpusError(f"cannot read passages from {path}: {exc}") from exc
    return out


def content_hash(item: CorpusItem) -> str:
    """sha256 hex of the content that gets embedded: kind + text, or kind + image bytes.

    Used as the embedding cache key: editing a caption does not change an image's hash,
    re-encoding the photo does.
    """
    h = hashlib.sha256()
    h.update(item.kind.encode() + b"\0")
    if item.kind == "image":
        path = item.image_path
        if path is None:
            raise CorpusError(f"image item {item.id!r} has no image path")
        h.update(path.read_bytes())
    else:
        h.update(item.text.encode("utf-8"))
    return h.hexdigest()
