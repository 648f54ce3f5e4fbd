"""The Embedding space page's answers against a real PostgreSQL: exact, and never cross-model."""

import io

import numpy as np
import pytest
from fake_models import ColourModel, solid

from lib.corpus import CorpusItem, load_items
from lib.embeddings.local import MINILM
from lib.embeddings.registry import load_model
from lib.queries import image_input, image_vector, text_vector
from lib.space import TOY_VECTOR, EmbeddingSpace, ModelMismatch, Query, cross_model_attempt
from lib.store import ensure_corpus_table
from lib.vectors import embeddable, item_vectors

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def minilm():
    return load_model(MINILM.name)


@pytest.fixture(scope="module")
def space(db, minilm):
    items = embeddable(minilm, load_items())
    vectors = item_vectors(minilm, items)
    table = ensure_corpus_table(db, MINILM.name, items, vectors)
    return EmbeddingSpace(MINILM.name, table, items, vectors, normalized=True)


def brute_force(space: EmbeddingSpace, query: np.ndarray, k: int):
    distances = 1.0 - (space.vectors.astype(np.float64) @ query.astype(np.float64)) / (
        np.linalg.norm(space.vectors, axis=1) * np.linalg.norm(query)
    )
    order = np.argsort(distances, kind="stable")[:k]
    return [space.items[i].id for i in order], distances[order]


def test_true_neighbours_of_dragged_points_equal_numpy_brute_force(db, space):
    rng = np.random.default_rng(7)
    lo, hi = space.xy.min(axis=0), space.xy.max(axis=0)
    points = rng.uniform(lo - 0.1, hi + 0.1, size=(20, 2))
    for x, y in points:
        query = space.point_query(x, y)
        answer = space.answer(db, query, 10)
        ids, distances = brute_force(space, query.vector, 10)
        assert [n.id for n in answer.in_space] == ids
        assert np.allclose([n.distance for n in answer.in_space], distances, atol=1e-5)
        assert all(abs(n.similarity - (1 - n.distance)) < 1e-12 for n in answer.in_space)


def test_a_small_cat_typed_is_placed_on_the_map_and_finds_a_cat_first(db, space, minilm):
    query = space.vector_query(text_vector(minilm, "a small cat"), "text", "a small cat")
    assert np.allclose([query.x, query.y], space.projection.transform(query.vector)[0])
    answer = space.answer(db, query, 5)
    assert "cat" in answer.in_space[0].content
    assert [n.id for n in answer.in_space] == brute_force(space, query.vector, 5)[0]


def test_the_map_list_is_the_2d_nearest_and_the_overlap_is_counted(db, space):
    item = space.items[0]
    answer = space.answer(db, space.point_query(item.x, item.y), 5)
    assert answer.on_map[0].item == item and answer.on_map[0].distance == 0
    d = np.hypot(space.xy[:, 0] - item.x, space.xy[:, 1] - item.y)
    assert [n.item.id for n in answer.on_map] == [space.items[i].id for i in np.argsort(d)[:5]]
    on_map = {n.item.id for n in answer.on_map}
    assert answer.shared == [n.id for n in answer.in_space if n.id in on_map]
    assert answer.agree == (len(answer.shared) == 5)


def test_the_sql_shown_is_the_exact_scan_that_ran_and_its_plan_proves_it(db, space):
    query = space.point_query(0.0, 0.0)
    answer = space.answer(db, query, 5)
    text = answer.script.text()
    assert text.startswith("BEGIN;\n") and text.endswith("\nCOMMIT;")
    assert "SET LOCAL enable_indexscan = off;" in text
    assert f"FROM {space.table}" in text and "ORDER BY embedding <=> $1" in text
    (statement,) = answer.script.statements
    assert statement.params[1] == 5 and statement.params[0].shape == (384,)
    exact = space.exact_plan(db, query, 5)
    plan = "\n".join(exact.lines)
    assert exact.exact and "Seq Scan" in plan and "Index" not in plan
    assert "'[… 384 numbers …]'" in plan and len(max(plan.splitlines(), key=len)) < 120


def test_a_query_from_another_model_is_refused_before_it_reaches_sql(db, space):
    other = Query("clip-ViT-B-32", np.ones(384, np.float32) / 384**0.5, 0, 0, "text", "x")
    with pytest.raises(ModelMismatch, match="never compared"):
        space.answer(db, other, 5)


def test_comparing_two_models_in_sql_shows_postgres_own_error(db, space):
    toy = cross_model_attempt(db, space.table, TOY_VECTOR)
    assert toy.error == "different vector dimensions 384 and 3"
    assert toy.sqlstate == "22000" and toy.rows == []
    clip_sized = cross_model_attempt(db, space.table, np.full(512, 0.04, np.float32))
    assert clip_sized.error == "different vector dimensions 384 and 512"
    assert "<=> $1" in toy.script.text() and space.table in toy.script.text()
    assert "\\bind '[0.6,0,0.8]' \\g" in toy.script.text()


def test_an_uploaded_image_goes_through_an_image_model_to_postgres(db):
    model = ColourModel()
    photos = [it for it in load_items() if it.kind == "image"]
    texts = [
        CorpusItem(f"colour-{i}", "text", "colours", t, None, False)
        for i, t in enumerate(["a red apple", "green grass", "blue sky", "a green and blue sea"])
    ]
    items = texts + photos
    vectors = model.embed([it.text if it.kind == "text" else it.load_image() for it in items])
    table = ensure_corpus_table(db, model.info.name, items, vectors)
    space = EmbeddingSpace(model.info.name, table, items, vectors, normalized=True)
    assert set(space.thumbnails) == {p.id for p in photos}
    assert all(url.startswith("data:image/jpeg;base64,") for url in space.thumbnails.values())

    buf = io.BytesIO()
    solid((240, 20, 20)).save(buf, format="PNG")
    vector = image_vector(model, image_input(model, buf.getvalue(), "red.png"))
    query = space.vector_query(vector, "image", "photo: red.png")
    answer = space.answer(db, query, 3)
    assert [n.id for n in answer.in_space] == brute_force(space, vector, 3)[0]
    assert answer.in_space[0].id == "colour-0"
    assert {n.kind for n in answer.in_space} <= {"text", "image"}
