"""What a page draws from an object nothing changes, made once per object, not at every rerun.

A stored report, a ranker's cached answer or a measured run is kept by the page's cache
(`st.cache_resource`: one object for every session, never a copy). A table or plot built from
it is the same at every rerun, so it is built once per object and kept here beside the object
itself: an entry answers only for that very object (`is`, not an equal one at a reused id),
and the oldest entries go when more than `KEPT` are held.

Tables are kept as Arrow tables (`table`): `st.dataframe` then only writes the bytes, where a
pandas frame is converted to Arrow at every call (about 1 ms for ten rows, measured).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
from streamlit import dataframe_util

from lib.core.kept import Kept

T = TypeVar("T")
# An entry holds its object too, so an object the page's cache let go lives on until its
# entries go: keep few, and use this only for objects a cache keeps for minutes (stored reports,
# a ranker's answer, a measured pair), never for a copy st.cache_data hands out at each call.
KEPT = 64


_KEPT = Kept(KEPT)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    return a is b


def of(obj: Any, key: Hashable, make: Callable[[], T]) -> T:
    """`make()` the first time `key` is asked of this very `obj`, the kept value after.

    `obj` may be a tuple of the objects a value is drawn from: it then answers only for those
    very objects, each of them."""
    ids = tuple(map(id, obj)) if isinstance(obj, tuple) else id(obj)
    slot = (ids, key)
    hit = _KEPT.get(slot)
    if hit is not None and _same(hit[0], obj):
        return hit[1]
    value = make()
    _KEPT.put(slot, (obj, value))
    return value


def table(frame: pd.DataFrame | Mapping[str, list]) -> pa.Table:
    """A frame, or columns by name, as `st.dataframe(..., hide_index=True)` shows it: its
    columns, no index."""
    if isinstance(frame, pd.DataFrame):
        return pa.Table.from_pandas(frame, preserve_index=False)
    return pa.table(dict(frame))


def arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as `st.dataframe(frame)` shows it, its index too: Streamlit's own conversion,
    done once by whoever keeps the result."""
    return dataframe_util.convert_pandas_df_to_arrow_table(frame)


def table_of(
    obj: Any, key: Hashable, make: Callable[[], pd.DataFrame | Mapping[str, list]]
) -> pa.Table:
    """`table(make())`, once per object and key."""
    return of(obj, ("table", key), lambda: table(make()))
