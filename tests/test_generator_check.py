"""Real against generated rows at equal size, on a small slice against the real PostgreSQL."""

import numpy as np
import pytest

from lib.dataset.passages import load_dataset
from lib.lessons.recall import generator_check

pytestmark = pytest.mark.db

N = 1500  # a size no other test builds


@pytest.fixture(scope="module")
def ds():
    small = load_dataset().sliced(2000)  # the generator is fitted to these 2,000 real rows
    small.embed(2001)
    return small


def test_both_sides_are_measured_with_the_same_index_and_stored(db, ds):
    check = generator_check.run_check(db, ds, N)
    real, gen = check.real, check.generated
    assert (real.rows, real.real_rows, gen.rows, gen.real_rows) == (N, N, N, 0)
    assert real.table == "recall_n1500_d384" and gen.table == "recall_gen_n1500_d384"
    assert real.index == gen.index == "HNSW m=16 ef_construction=64"
    for side in (real, gen):
        assert side.lid_median > 1 and side.rc_median > 1
        assert 0 < side.nearest_similarity_median < 1
        r = [side.recall[str(ef)] for ef in generator_check.LOW_EF]
        assert all(0 <= x <= 1 for x in r) and r[-1] >= r[0]
    assert generator_check.stored(db, ds) == [check]
    text = "\n".join(generator_check.lines([check]))
    assert "generated" in text and f"{N:,}" in text


def test_the_generated_table_holds_the_generators_rows_and_is_kept(db, ds):
    table = generator_check.load_generated(db, ds, N)
    expected = np.concatenate(list(generator_check.generated(ds, N)))
    rows = db.fetchall(f"SELECT id, embedding FROM {table} WHERE id IN (1, {N}) ORDER BY id")
    assert np.array_equal(rows[0][1].to_numpy(), expected[0])
    assert np.array_equal(rows[1][1].to_numpy(), expected[N - 1])
    oid = db.fetchone("SELECT to_regclass(%s)::oid", (table,))[0]
    assert generator_check.load_generated(db, ds, N) == table
    assert db.fetchone("SELECT to_regclass(%s)::oid", (table,))[0] == oid, "not built again"
