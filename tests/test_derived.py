"""lib/ui/derived.py: a value is made once per object and key, never handed to another object
(an equal one, or one at a reused id), and a table keeps the frame's columns, not its index."""

from __future__ import annotations

import pandas as pd

from lib.ui import derived


def test_made_once_per_object_and_key():
    calls = []

    def make(tag):
        calls.append(tag)
        return [tag]

    report, equal = {"a": 1}, {"a": 1}
    first = derived.of(report, "k", lambda: make("first"))
    assert derived.of(report, "k", lambda: make("again")) is first
    assert derived.of(equal, "k", lambda: make("equal")) == ["equal"]  # another object
    assert derived.of(report, "other key", lambda: make("other")) == ["other"]
    assert calls == ["first", "equal", "other"]


def test_an_entry_answers_only_for_its_own_object_and_the_oldest_go():
    objs = [object() for _ in range(derived.KEPT + 10)]
    for i, o in enumerate(objs):
        derived.of(o, "i", lambda i=i: i)
    assert derived.of(objs[-1], "i", lambda: -1) == len(objs) - 1  # still kept
    assert derived.of(objs[0], "i", lambda: -1) == -1  # the oldest went
    assert len(derived._KEPT) <= derived.KEPT


def test_a_table_has_the_frames_columns_and_no_index():
    frame = pd.DataFrame({"#": [1, 2], "passage": ["a", "b"]}, index=[7, 9])
    table = derived.table(frame)
    assert table.column_names == ["#", "passage"]
    assert table.column("passage").to_pylist() == ["a", "b"]
    columns = derived.table({"#": [1, 2], "passage": ["a", "b"]})
    assert columns.to_pydict() == table.to_pydict() == {"#": [1, 2], "passage": ["a", "b"]}
    once = derived.table_of(frame, "t", lambda: frame)
    assert derived.table_of(frame, "t", lambda: frame.head(1)) is once


def test_a_value_drawn_from_several_objects_answers_only_for_those_very_objects():
    stored, run, other_run = {"a": 1}, [1], [1]
    first = derived.of((stored, run), "figure", lambda: "first")
    assert derived.of((stored, run), "figure", lambda: "again") == "first"  # a new tuple
    assert derived.of((stored, other_run), "figure", lambda: "other") == "other"
    assert first == "first"
