"""Paste SQL into the real psql, as a learner would, and compare what comes back.

`psql` runs a text through the psql binary of the embedded PostgreSQL package (psql 18,
which knows `\\bind`), or a psql 16+ on PATH, and returns every result it printed.
`assert_same_results` compares those with the rows a `lib.core.psql.Script` got when it ran.
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from lib.core.database import psql_binary
from lib.core.lab_schema import lab_conninfo
from lib.core.psql import Script

SEP = "\x1f"
NULL = "\x1e"
FOOTER = re.compile(r"\((\d+) rows?\)")


@dataclass
class PsqlResult:
    columns: list[str]
    rows: list[list[str | None]]


class PsqlFailed(AssertionError):
    pass


def psql(url: str, text: str) -> list[PsqlResult]:
    """Every result psql printed for `text` (fed on stdin, as a paste); raises on an error.
    psql connects as `make psql` does: with the lab's search_path."""
    proc = subprocess.run(
        [psql_binary(), "-X", "-q", "-A", "-F", SEP, "-P", f"null={NULL}", "-P", "footer=on",
         "-P", "pager=off", "-v", "ON_ERROR_STOP=1", "-d", lab_conninfo(url)],
        input=text, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        raise PsqlFailed(proc.stderr.strip())
    results: list[PsqlResult] = []
    current: PsqlResult | None = None
    # Split on newlines only: str.splitlines() also splits on NULL's \x1e (a record separator).
    lines = proc.stdout.split("\n")
    if lines[-1] == "":
        lines.pop()
    for line in lines:
        if current is None:
            current = PsqlResult(line.split(SEP), [])
        elif FOOTER.fullmatch(line):
            assert int(FOOTER.fullmatch(line).group(1)) == len(current.rows)
            results.append(current)
            current = None
        else:
            current.rows.append([None if v == NULL else v for v in line.split(SEP)])
    assert current is None, f"unterminated psql output: {proc.stdout[-500:]}"
    return results


def same_value(ours: Any, printed: str | None) -> bool:
    if ours is None or printed is None:
        return ours is None and printed is None
    if isinstance(ours, bool):
        return printed == ("t" if ours else "f")
    if isinstance(ours, float):
        theirs = float(printed)
        return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs
    if isinstance(ours, int):
        return int(printed) == ours
    return str(ours) == printed


def assert_same_results(script: Script, url: str) -> list[PsqlResult]:
    """Paste `script.text()` into psql and check it returns, value for value, what ran."""
    printed = psql(url, script.text())
    expected = [r for r in script.results if r is not None]
    assert len(printed) == len(expected), (len(printed), len(expected))
    for ours, theirs in zip(expected, printed, strict=True):
        assert tuple(theirs.columns) == ours.columns
        assert len(theirs.rows) == len(ours.rows)
        for i, (row, shown) in enumerate(zip(ours.rows, theirs.rows, strict=True)):
            assert len(row) == len(shown)
            for a, b in zip(row, shown, strict=True):
                assert same_value(a, b), (i, a, b)
    return printed
