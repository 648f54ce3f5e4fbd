"""One model's embedding space: the items a map shows, their 2-D map, queries, true neighbours.

A map shows the lesson's items and the themes the learner adds, through a PCA projection
(lib/lessons/space/projection.py) fitted on exactly those items. A query is a d-dimensional
vector and its place on that map: a map position the learner dropped, made into a vector by
blending the real vectors of the items nearest it on the map (`EmbeddingSpace.lift`, not the
inverse projection), or a typed text or uploaded image embedded by the model, placed on the
map by the same projection. Its neighbours come twice, among the items the map shows: nearest
on the map (2-D distance, what the eye sees) and nearest in d dimensions (cosine distance, an
exact scan in Postgres).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
from psycopg import sql

from lib.core.corpus import CorpusItem
from lib.core.corpus import themes as corpus_themes
from lib.core.database import Database
from lib.core.embeddings.base import InvalidVector, checked_vectors
from lib.core.psql import Script, Statement, ident, run
from lib.core.store import EXACT, EXACT_COMMENT, Neighbor
from lib.harness.recall import is_exact_text_plan
from lib.lessons.space.projection import Projection, fit_projection

Source = Literal["point", "text", "image"]
THUMBNAIL_PX = 120

# A dropped point's query blends the vectors of the LIFT_ITEMS items nearest it on the map,
# weighted by 1 / (d² + s²): d the map distance, s = LIFT_SOFTENING × the map's larger side.
# Dropped on an item (d = 0), that item weighs most; s keeps the weight finite.
LIFT_ITEMS = 4
LIFT_SOFTENING = 0.02

# The true neighbours among the items the map shows: the lesson's, and the themes added.
MAP_NEAREST_SQL = """SELECT id, kind, theme, content, embedding <=> $1 AS distance
FROM {table}
WHERE lesson OR theme = ANY($2)
ORDER BY embedding <=> $1
LIMIT $3"""


class ModelMismatch(ValueError):
    """A query made by one model was about to be compared with another model's vectors."""


@dataclass(frozen=True)
class MapItem:
    """A corpus item where the map shows it."""

    id: str
    kind: str
    theme: str
    text: str
    lesson: bool
    x: float
    y: float


@dataclass(frozen=True)
class Blend:
    """How a map position became a query vector: the items blended and their weights.

    query = normalize(Σ weight × item's unit vector); weights sum to 1, nearest item first.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    weights: tuple[float, ...]
    distances: tuple[float, ...]  # each item's map distance to the point
    softening: float  # s in 1 / (d² + s²)

    def describe(self) -> str:
        """'tabby cat × 0.93 + a small cat × 0.05 + …', heaviest first."""
        parts = sorted(zip(self.weights, self.texts, strict=True), reverse=True)
        return " + ".join(f"“{_short(t)}” × {w:.2f}" for w, t in parts)


@dataclass(frozen=True)
class Query:
    """A query vector, the model that made it, and where it sits on that model's map."""

    model_name: str
    vector: np.ndarray = field(repr=False)
    x: float
    y: float
    source: Source
    label: str
    blend: Blend | None = None  # how a dropped point became `vector`


@dataclass(frozen=True)
class MapNeighbor:
    item: MapItem
    distance: float  # Euclidean distance on the map


@dataclass(frozen=True)
class Answer:
    """Both neighbour lists of one query, and the SQL that produced the true one."""

    query: Query
    on_map: list[MapNeighbor]
    in_space: list[Neighbor]
    script: Script  # the exact scan as it ran; `in_space` is made of its rows

    @property
    def shared(self) -> list[str]:
        """Ids in both lists, in the order of the true list."""
        on_map = {n.item.id for n in self.on_map}
        return [n.id for n in self.in_space if n.id in on_map]

    @property
    def agree(self) -> bool:
        return len(self.shared) == len(self.in_space) == len(self.on_map)


def blend_weights(distances: np.ndarray, softening: float) -> np.ndarray:
    """Weights 1 / (d² + s²) for map distances d, scaled to sum to 1."""
    w = 1.0 / (np.asarray(distances, dtype=np.float64) ** 2 + softening**2)
    return w / w.sum()


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float64 (a zero row stays zero)."""
    arr = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


class EmbeddingSpace:
    """The corpus as one model embeds it, the items a map shows, projected. Read-only once built.

    `items`/`vectors` are every item the model embedded; the map shows the lesson's items
    and those of `themes` (None: every theme), with the projection fitted on them alone.
    """

    def __init__(
        self,
        model_name: str,
        table: str,
        items: Sequence[CorpusItem],
        vectors: np.ndarray,
        *,
        normalized: bool,
        skipped: Sequence[CorpusItem] = (),
        themes: Iterable[str] | None = None,
    ):
        self.model_name = model_name
        self.table = table
        every = checked_vectors(vectors, np.asarray(vectors).shape[-1], len(items))
        self.all_themes: tuple[str, ...] = tuple(corpus_themes(items))
        wanted = set(self.all_themes if themes is None else themes)
        unknown = wanted - set(self.all_themes)
        if unknown:
            raise ValueError(f"no item of {model_name}'s corpus has the theme(s) {sorted(unknown)}")
        self.themes = tuple(t for t in self.all_themes if t in wanted)
        shown = [i for i, it in enumerate(items) if it.lesson or it.theme in wanted]
        if len(shown) < 3:
            raise ValueError(f"a map needs at least 3 items, these themes give {len(shown)}")
        self.theme_counts = {t: sum(it.theme == t for it in items) for t in self.all_themes}
        self._unit_by_id = dict(zip((it.id for it in items), unit_rows(every), strict=True))
        self.vectors = every[shown]
        self.vectors.setflags(write=False)
        self.dimension = int(self.vectors.shape[1])
        self.projection: Projection = fit_projection(self.vectors, normalize=normalized)
        self.xy = self.projection.transform(self.vectors)
        self.xy.setflags(write=False)
        self.items = tuple(
            MapItem(it.id, it.kind, it.theme, it.text, it.lesson, float(x), float(y))
            for it, (x, y) in zip((items[i] for i in shown), self.xy, strict=True)
        )
        self.photos = tuple(items[i] for i in shown if items[i].kind == "image")
        self.hidden = len(items) - len(shown)
        self.skipped = tuple(skipped)
        self.unit = unit_rows(self.vectors)
        self.unit.setflags(write=False)
        self.softening = LIFT_SOFTENING * float(np.ptp(self.xy, axis=0).max() or 1.0)

    @classmethod
    def from_corpus(
        cls, corpus: Any, *, normalized: bool, themes: Iterable[str] | None = None
    ) -> EmbeddingSpace:
        """Build from a `lib.ui.resources.Corpus` (items, skipped, vectors, table)."""
        return cls(
            corpus.model_name,
            corpus.table,
            corpus.items,
            corpus.vectors,
            normalized=normalized,
            skipped=corpus.skipped,
            themes=themes,
        )

    @property
    def explained(self) -> tuple[float, float]:
        return self.projection.explained

    def item(self, item_id: str) -> MapItem:
        return next(it for it in self.items if it.id == item_id)

    @cached_property
    def gram(self) -> np.ndarray:
        """Cosine similarities between every two items on the map (n, n): the browser's lift."""
        g = self.unit @ self.unit.T
        g.setflags(write=False)
        return g

    def lift(self, x: float, y: float) -> tuple[np.ndarray, Blend]:
        """The query vector for map position (x, y): the unit vectors of the LIFT_ITEMS items
        nearest it on the map, weighted by 1 / (d² + s²), summed and scaled to unit length."""
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InvalidVector("a map position contains NaN or infinity")
        d = np.hypot(self.xy[:, 0] - x, self.xy[:, 1] - y)
        near = np.argsort(d, kind="stable")[:LIFT_ITEMS]
        w = blend_weights(d[near], self.softening)
        vec = w @ self.unit[near]
        blend = Blend(
            tuple(self.items[i].id for i in near),
            tuple(self.items[i].text for i in near),
            tuple(float(v) for v in w),
            tuple(float(v) for v in d[near]),
            self.softening,
        )
        return _unit(vec, self.dimension), blend

    def point_query(self, x: float, y: float, label: str = "your point") -> Query:
        """The query at map position (x, y), made by `lift`."""
        vec, blend = self.lift(x, y)
        return Query(self.model_name, vec, float(x), float(y), "point", label, blend)

    def blend_query(self, blend: Blend, label: str = "your point") -> Query:
        """A point dropped on another map of this model, rebuilt from its blend and placed here."""
        missing = [i for i in blend.ids if i not in self._unit_by_id]
        if missing:
            raise KeyError(f"{self.model_name}'s corpus has no item {missing[0]!r}")
        vec = np.asarray(blend.weights) @ np.stack([self._unit_by_id[i] for i in blend.ids])
        query = self.vector_query(_unit(vec, self.dimension), "point", label)
        return replace(query, blend=blend)

    def vector_query(self, vector: np.ndarray, source: Source, label: str) -> Query:
        """A query from a vector this space's model made, placed on the map."""
        vec = checked_vectors(vector, self.dimension, 1)[0]
        x, y = self.projection.transform(vec)[0]
        return Query(self.model_name, vec, float(x), float(y), source, label)

    def map_nearest(self, x: float, y: float, k: int) -> list[MapNeighbor]:
        """The k items nearest to (x, y) on the map (what lights up while dragging)."""
        d = np.hypot(self.xy[:, 0] - x, self.xy[:, 1] - y)
        order = np.argsort(d, kind="stable")[:k]
        return [MapNeighbor(self.items[i], float(d[i])) for i in order]

    def true_nearest(self, vector: np.ndarray, k: int) -> list[int]:
        """Indices of the k items on the map nearest `vector` by cosine, in numpy."""
        sims = self.unit @ unit_rows(np.asarray(vector)[None, :])[0]
        return np.argsort(-sims, kind="stable")[:k].tolist()

    @property
    def start(self) -> MapItem:
        """Where the query starts: on the lesson's first item (“a small cat”)."""
        return next((it for it in self.items if it.lesson), self.items[0])

    def _check(self, query: Query) -> np.ndarray:
        if query.model_name != self.model_name:
            raise ModelMismatch(
                f"the query was embedded by {query.model_name}, the map is {self.model_name}'s:"
                " vectors of two models are never compared"
            )
        return checked_vectors(query.vector, self.dimension, 1)[0]

    def statement(self, vector: np.ndarray, k: int) -> Statement:
        """MAP_NEAREST_SQL on this map's table, with its parameters bound."""
        return Statement.of(
            sql.SQL(MAP_NEAREST_SQL).format(table=ident(self.table)),
            vector,
            list(self.themes),
            int(k),
            names=("the query vector", "the themes added to the lesson's items", "k"),
        )

    def answer(self, db: Database, query: Query, k: int) -> Answer:
        """Nearest on the map and nearest in d dimensions (exact scan in Postgres), among the
        items the map shows."""
        vec = self._check(query)
        script = run(db, [self.statement(vec, k)], EXACT, settings_comment=EXACT_COMMENT)
        in_space = [Neighbor(*r) for r in script.rows]
        return Answer(query, self.map_nearest(query.x, query.y, k), in_space, script)

    def exact_plan(self, db: Database, query: Query, k: int) -> ExactPlan:
        """The plan of the true-neighbour query, checked to read no index (every row read)."""
        vec = self._check(query)
        statement = self.statement(vec, k)
        explain = replace(statement, text="EXPLAIN (COSTS OFF)\n" + statement.text)
        script = run(db, [explain], EXACT, settings_comment=EXACT_COMMENT)
        short = f"'[… {self.dimension} numbers …]'"
        lines = [re.sub(r"'\[[^\]']{40,}\]'", short, r[0]) for r in script.rows]
        return ExactPlan(script, lines, is_exact_text_plan(lines))


@dataclass(frozen=True)
class ExactPlan:
    """EXPLAIN of the true-neighbour query: the script, the plan (vectors shortened), and
    whether it reads every row (no index node), as the recall harness checks its truth."""

    script: Script
    lines: list[str]
    exact: bool


def _unit(vec: np.ndarray, dimension: int) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    if not norm > 0:
        raise InvalidVector("the blended vectors cancel out: no direction to search")
    return checked_vectors(vec / norm, dimension, 1)[0]


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def thumbnail_jpeg(item: CorpusItem, size: int = THUMBNAIL_PX) -> bytes:
    """A small JPEG of an image item, for the map's hover."""
    im = item.load_image()
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


# A vector from no model on this machine: the stand-in "other model" when only one is usable.
TOY_VECTOR = np.array([0.6, 0.0, 0.8], dtype=np.float32)

CROSS_MODEL_SQL = """SELECT id, embedding <=> $1 AS distance
FROM {table}
ORDER BY distance
LIMIT 3"""


@dataclass(frozen=True)
class CrossModelAttempt:
    """What Postgres said when asked to compare one model's table with another's vector."""

    script: Script

    @property
    def error(self) -> str | None:
        """Postgres's own message, or None if it ran."""
        return self.script.error

    @property
    def sqlstate(self) -> str | None:
        return self.script.sqlstate

    @property
    def rows(self) -> list[tuple]:
        return self.script.rows


def cross_model_attempt(db: Database, table: str, other: np.ndarray) -> CrossModelAttempt:
    """Run the comparison the app never makes, and return Postgres's answer (its error).

    The app checks dimensions before a vector reaches Postgres; this deliberately skips
    that check so the learner sees the database refuse on its own.
    """
    vec = np.ascontiguousarray(np.asarray(other, dtype=np.float32).ravel())
    if not np.isfinite(vec).all() or vec.size == 0:
        raise InvalidVector("the other model's vector must be finite and non-empty")
    statement = Statement.of(
        sql.SQL(CROSS_MODEL_SQL).format(table=ident(table)),
        vec,
        names=("the other model's vector",),
    )
    return CrossModelAttempt(run(db, [statement], keep_error=True))
