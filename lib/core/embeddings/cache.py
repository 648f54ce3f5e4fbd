"""An on-disk cache of embeddings keyed by model name and content hash (SQLite, one file).

It also keeps how fast each model embedded its last long runs here, for estimates.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import checked_vectors


class EmbeddingCache:
    """Vectors already computed, so the corpus is not re-embedded at every start.

    Safe to share between threads and processes: every call opens its own short transaction.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embedding ("
                " model TEXT NOT NULL, content_hash TEXT NOT NULL, dim INTEGER NOT NULL,"
                " vector BLOB NOT NULL, PRIMARY KEY (model, content_hash))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embedding_run ("
                " model TEXT NOT NULL, texts INTEGER NOT NULL, seconds REAL NOT NULL,"
                " finished_at REAL NOT NULL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def get_many(self, model: str, dimension: int, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `hashes`, as {hash: float32 vector}."""
        found: dict[str, np.ndarray] = {}
        conn = self._conn()
        for start in range(0, len(hashes), 500):
            chunk = list(hashes[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT content_hash, vector FROM embedding"
                f" WHERE model = ? AND dim = ? AND content_hash IN ({marks})",
                [model, dimension, *chunk],
            ).fetchall()
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def known(self, model: str, dimension: int, hashes: Sequence[str]) -> set[str]:
        """The hashes among `hashes` that have a vector (without reading the vectors)."""
        found: set[str] = set()
        conn = self._conn()
        for start in range(0, len(hashes), 500):
            chunk = list(hashes[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(
                key
                for (key,) in conn.execute(
                    f"SELECT content_hash FROM embedding"
                    f" WHERE model = ? AND dim = ? AND content_hash IN ({marks})",
                    [model, dimension, *chunk],
                )
            )
        return found

    def record_run(self, model: str, texts: int, seconds: float) -> None:
        """Remember that `model` embedded `texts` texts in `seconds` here."""
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO embedding_run VALUES (?, ?, ?, ?)",
                (model, texts, seconds, time.time()),
            )

    def rate(self, model: str, *, min_texts: int = 1000) -> tuple[float, float] | None:
        """(texts per second, when) of `model`'s latest run of at least `min_texts` texts."""
        query = (
            "SELECT texts / seconds, finished_at FROM embedding_run"
            " WHERE model = ? AND texts >= ? AND seconds > 0 ORDER BY finished_at DESC LIMIT 1"
        )
        row = self._conn().execute(query, (model, min_texts)).fetchone()
        return (float(row[0]), float(row[1])) if row else None

    def put_many(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        vectors = checked_vectors(vectors, vectors.shape[-1], len(hashes))
        dim = vectors.shape[1]
        with self._conn() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embedding VALUES (?, ?, ?, ?)",
                [(model, h, dim, v.tobytes()) for h, v in zip(hashes, vectors, strict=True)],
            )
