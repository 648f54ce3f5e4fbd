"""Rows in PostgreSQL's binary COPY format, built with numpy (how the recall tables load)."""

from __future__ import annotations

import struct

import numpy as np

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)


def copy_rows(ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """Rows (id integer, embedding vector) in PostgreSQL's binary COPY format, built with numpy.

    Each row: field count (int16 2), id length (int32 4) and value, vector length (int32
    4 + 4d) and pgvector's binary form (int16 dimensions, int16 unused, d float4), big-endian.
    """
    n, d = vectors.shape
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i4"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (d,)),
        ]
    )
    out = np.empty(n, dtype=row)
    out["fields"] = 2
    out["id_len"] = 4
    out["id"] = ids
    out["vec_len"] = 4 + 4 * d
    out["dim"] = d
    out["unused"] = 0
    out["vec"] = vectors
    return out.tobytes()
