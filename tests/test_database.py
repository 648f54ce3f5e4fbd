"""The database layer against a real PostgreSQL: pool, SET LOCAL isolation, messages."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import pytest

from lib.core.database import Database, DatabaseUnavailable, mask_password


def test_extension_and_versions_are_reported(db):
    info = db.info()
    assert info.pgvector_version.count(".") == 2
    assert int(info.server_version.split(".")[0]) >= 13


def test_vectors_round_trip_as_numpy(db):
    v = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    (back,) = db.fetchone("SELECT %s::vector", (v,))
    assert np.array_equal(back.to_numpy() if hasattr(back, "to_numpy") else back, v)


def test_set_local_settings_do_not_leak_to_the_next_query(db):
    name = "hnsw.ef_search"
    default = db.fetchone("SELECT current_setting(%s)", (name,))[0]
    inside = db.fetchone("SELECT current_setting(%s)", (name,), settings={name: 321})[0]
    after = [db.fetchone("SELECT current_setting(%s)", (name,))[0] for _ in range(20)]
    assert inside == "321"
    assert set(after) == {default}


def test_concurrent_sessions_each_see_only_their_own_settings(db):
    def run(value: int) -> str:
        return db.fetchone(
            "SELECT current_setting('hnsw.ef_search') FROM pg_sleep(0.05)",
            settings={"hnsw.ef_search": value},
        )[0]

    values = list(range(10, 30))
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(run, values))
    assert seen == [str(v) for v in values]


def test_statement_timeout_setting_cancels_a_long_query(db):
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.fetchone("SELECT pg_sleep(5)", settings={"statement_timeout": "100ms"})
    assert db.fetchone("SELECT 1")[0] == 1


def test_unreachable_server_gives_one_clear_message_with_a_fix():
    url = "postgresql://lab:secret@127.0.0.1:1/nothing?connect_timeout=2"
    with pytest.raises(DatabaseUnavailable) as e:
        Database(url, kind="url", location=mask_password(url))
    assert "How to fix" in str(e.value)
    assert "secret" not in str(e.value)


@pytest.mark.parametrize(
    "url, masked",
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
        ("postgresql://u@h/db?password=pw&sslmode=require",
         "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://h/db?sslmode=require&password=p%20w", "postgresql://h/db?sslmode=require&password=***"),
        ("postgresql://u:pw@h/db?password=pw2", "postgresql://u:***@h/db?password=***"),
        ("host=h password='p w\\' x' dbname=d", "host=h password=*** dbname=d"),
    ],
)  # fmt: skip
def test_mask_password(url, masked):
    assert mask_password(url) == masked
    assert "pw" not in mask_password(url)


def test_repeated_queries_are_never_prepared_so_plans_follow_settings(db):
    for i in range(30):
        db.fetchall("SELECT %s::int + 1", (i,), settings={"enable_indexscan": i % 2 == 0})
    (prepared,) = db.fetchone("SELECT count(*) FROM pg_prepared_statements")
    assert prepared == 0
