"""One model's embedding space: the corpus on a 2-D map, queries placed on it, true neighbours.

The map is a PCA projection (lib.projection) of the model's vectors of the corpus, fitted
once per model. A query is a d-dimensional vector and its place on the map: a map position
the learner chose (sent back into d dimensions by the inverse projection), or a typed text or
uploaded image embedded by the model (placed on the map by the same projection). Its
neighbours come twice: nearest on the map (2-D distance, what the eye sees) and nearest in
d dimensions (cosine distance, an exact scan in Postgres: the truth).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from psycopg import sql

from lib.corpus import CorpusItem
from lib.database import Database
from lib.embeddings.base import InvalidVector, checked_vectors
from lib.projection import Projection, fit_projection
from lib.psql import Script, Statement, ident, run
from lib.recall import is_exact_text_plan
from lib.store import EXACT, EXACT_COMMENT, Neighbor, nearest_script, nearest_statement

Source = Literal["point", "text", "image"]
THUMBNAIL_PX = 120


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
class Query:
    """A query vector, the model that made it, and where it sits on that model's map."""

    model_name: str
    vector: np.ndarray = field(repr=False)
    x: float
    y: float
    source: Source
    label: str


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


class EmbeddingSpace:
    """The corpus as one model embeds it, projected to 2-D. Read-only once built."""

    def __init__(
        self,
        model_name: str,
        table: str,
        items: Sequence[CorpusItem],
        vectors: np.ndarray,
        *,
        normalized: bool,
        skipped: Sequence[CorpusItem] = (),
    ):
        self.model_name = model_name
        self.table = table
        self.vectors = checked_vectors(vectors, np.asarray(vectors).shape[-1], len(items))
        self.dimension = int(self.vectors.shape[1])
        self.projection: Projection = fit_projection(self.vectors, normalize=normalized)
        self.xy = self.projection.transform(self.vectors)
        self.xy.setflags(write=False)
        self.items = tuple(
            MapItem(it.id, it.kind, it.theme, it.text, it.lesson, float(x), float(y))
            for it, (x, y) in zip(items, self.xy, strict=True)
        )
        self.skipped = tuple(skipped)
        self.thumbnails = {it.id: thumbnail_data_url(it) for it in items if it.kind == "image"}

    @classmethod
    def from_corpus(cls, corpus: Any, *, normalized: bool) -> EmbeddingSpace:
        """Build from a `lib.ui.Corpus` (items, skipped, vectors, table)."""
        return cls(
            corpus.model_name,
            corpus.table,
            corpus.items,
            corpus.vectors,
            normalized=normalized,
            skipped=corpus.skipped,
        )

    @property
    def explained(self) -> tuple[float, float]:
        return self.projection.explained

    def item(self, item_id: str) -> MapItem:
        return next(it for it in self.items if it.id == item_id)

    def point_query(self, x: float, y: float, label: str = "your point") -> Query:
        """The query at map position (x, y): the inverse projection of that position."""
        vector = self.projection.inverse([x, y])[0]
        return Query(self.model_name, vector, float(x), float(y), "point", label)

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

    def start(self, k: int = 5) -> MapItem:
        """Where the query starts: the lesson item whose spot the map and the space agree on most.

        Computed with numpy over the same vectors Postgres holds (equal to its exact scan).
        """
        candidates = [i for i, it in enumerate(self.items) if it.lesson] or [0]
        best, best_overlap = candidates[0], -1
        for i in candidates:
            it = self.items[i]
            q = self.projection.inverse([it.x, it.y])[0]
            true = set(np.argsort(-(self.vectors @ q), kind="stable")[:k].tolist())
            on_map = {self.items.index(n.item) for n in self.map_nearest(it.x, it.y, k)}
            if len(true & on_map) > best_overlap:
                best, best_overlap = i, len(true & on_map)
        return self.items[best]

    def _check(self, query: Query) -> np.ndarray:
        if query.model_name != self.model_name:
            raise ModelMismatch(
                f"the query was embedded by {query.model_name}, the map is {self.model_name}'s:"
                " vectors of two models are never compared"
            )
        return checked_vectors(query.vector, self.dimension, 1)[0]

    def answer(self, db: Database, query: Query, k: int) -> Answer:
        """Nearest on the map and nearest in d dimensions (exact scan in Postgres)."""
        vec = self._check(query)
        script = nearest_script(db, self.table, vec, k, exact=True)
        in_space = [Neighbor(*r) for r in script.rows]
        return Answer(query, self.map_nearest(query.x, query.y, k), in_space, script)

    def exact_plan(self, db: Database, query: Query, k: int) -> ExactPlan:
        """The plan of the true-neighbour query, checked to read no index (every row read)."""
        vec = self._check(query)
        statement = nearest_statement(self.table, vec, k)
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


def thumbnail_data_url(item: CorpusItem, size: int = THUMBNAIL_PX) -> str:
    """A small JPEG of an image item as a data: URL, for the map's hover."""
    im = item.load_image()
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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
