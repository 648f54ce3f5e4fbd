"""VoyageModel against a local fake of Voyage's API (tests/voyage_fake.py); never the real one."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from voyage_fake import FakeVoyage, Reply, decode_data_url, fake_vector

from lib.core.embeddings import voyage
from lib.core.embeddings.base import (
    BadRequest,
    EmbeddingError,
    EmbeddingModel,
    InvalidAPIKey,
    InvalidVector,
    MissingAPIKey,
    RateLimited,
    UnsupportedInput,
)
from lib.core.embeddings.voyage import VoyageModel, available, image_data_url, plan_batches

KEY = "test-key"


@pytest.fixture(autouse=True)
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key from the environment, and no request anywhere but 127.0.0.1."""
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    monkeypatch.delenv("VOYAGE_BASE_URL", raising=False)
    real = httpx.HTTPTransport.handle_request

    def guarded(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        assert request.url.host == "127.0.0.1", f"a test tried to reach {request.url.host}"
        return real(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", guarded)


@pytest.fixture
def fake() -> Iterator[FakeVoyage]:
    with FakeVoyage(KEY) as server:
        yield server
    assert server.problems == []


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make(fake: FakeVoyage, sleeps: list[float]) -> Iterator[Callable[..., VoyageModel]]:
    models: list[VoyageModel] = []

    def build(**kwargs: object) -> VoyageModel:
        options: dict[str, object] = {
            "api_key": KEY,
            "base_url": fake.base_url,
            "sleep": sleeps.append,
        }
        options.update(kwargs)
        model = VoyageModel(**options)  # type: ignore[arg-type]
        models.append(model)
        return model

    yield build
    for model in models:
        model.close()


def text_vector(text: str, dimension: int = 1024, input_type: str = "document") -> np.ndarray:
    return fake_vector([{"type": "text", "text": text}], dimension, input_type)


def pattern(size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Image.Image:
    width, height = size
    pixels = (np.arange(width * height * 3, dtype=np.uint32) * 37 % 251).astype(np.uint8)
    return Image.fromarray(pixels.reshape(height, width, 3), "RGB").convert(mode)


def reopened(image: Image.Image, fmt: str) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return Image.open(io.BytesIO(buffer.getvalue()))


def sent_images(fake: FakeVoyage) -> list[str]:
    return [
        piece["image_base64"]
        for body in fake.bodies()
        for item in body["inputs"]
        for piece in item["content"]
        if piece["type"] == "image_base64"
    ]


# --- the model and its request


def test_info_and_protocol() -> None:
    model = VoyageModel(api_key=KEY, output_dimension=512)
    assert isinstance(model, EmbeddingModel)
    assert model.info.name == "voyage-multimodal-3.5"
    assert model.info.dimension == 512
    assert model.info.modalities == frozenset({"text", "image"})
    assert model.info.normalized is True
    assert model.info.max_input_tokens == 32000
    assert KEY not in repr(model)


def test_texts_in_request_and_vectors_out(fake: FakeVoyage, make) -> None:
    model = make()
    out = model.embed(["a red apple", "un vélo bleu"], input_type="query")
    assert out.dtype == np.float32 and out.shape == (2, 1024) and out.flags.c_contiguous
    np.testing.assert_allclose(out[0], text_vector("a red apple", input_type="query"), rtol=1e-6)
    np.testing.assert_allclose(out[1], text_vector("un vélo bleu", input_type="query"), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    [seen] = fake.requests
    assert (seen.method, seen.path) == ("POST", "/v1/multimodalembeddings")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == {
        "inputs": [
            {"content": [{"type": "text", "text": "a red apple"}]},
            {"content": [{"type": "text", "text": "un vélo bleu"}]},
        ],
        "model": "voyage-multimodal-3.5",
        "input_type": "query",
        "output_dimension": 1024,
        "truncation": True,
    }
    assert model.last_usage["total_tokens"] > 0


def test_document_is_the_default_input_type(fake: FakeVoyage, make) -> None:
    out = make(truncation=False).embed(["x"])
    assert fake.bodies()[0]["input_type"] == "document"
    assert fake.bodies()[0]["truncation"] is False
    np.testing.assert_allclose(out[0], text_vector("x"), rtol=1e-6)


@pytest.mark.parametrize("dimension", [256, 512, 1024, 2048])
def test_output_dimensions(fake: FakeVoyage, make, dimension: int) -> None:
    out = make(output_dimension=dimension).embed(["hello"])
    assert out.shape == (1, dimension)
    assert fake.bodies()[0]["output_dimension"] == dimension
    np.testing.assert_allclose(out[0], text_vector("hello", dimension), rtol=1e-6)


@pytest.mark.parametrize("dimension", [0, 128, 768, 1536, 4096, "1024"])
def test_other_output_dimensions_are_refused(dimension: object) -> None:
    with pytest.raises(ValueError, match="256, 512, 1024, 2048"):
        VoyageModel(api_key=KEY, output_dimension=dimension)  # type: ignore[arg-type]


def test_empty_input_makes_no_request(fake: FakeVoyage, make) -> None:
    out = make().embed([])
    assert out.shape == (0, 1024) and out.dtype == np.float32
    assert fake.requests == []


def test_bad_input_type_and_unsupported_input(fake: FakeVoyage, make) -> None:
    model = make()
    with pytest.raises(ValueError, match="input_type"):
        model.embed(["x"], input_type="passage")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInput, match="int"):
        model.embed(["x", 42])  # type: ignore[list-item]
    assert fake.requests == []


def test_a_client_passed_in_is_used_and_left_open(fake: FakeVoyage) -> None:
    with httpx.Client() as client:
        model = VoyageModel(api_key=KEY, base_url=fake.base_url + "/", client=client)
        model.embed(["x"])
        model.close()
        assert not client.is_closed
    assert len(fake.requests) == 1


# --- the API key


def test_missing_key_is_reported_on_first_embed(fake: FakeVoyage) -> None:
    assert available() is False
    model = VoyageModel(base_url=fake.base_url)
    assert model.info.dimension == 1024
    with pytest.raises(MissingAPIKey, match="VOYAGE_API_KEY"):
        model.embed(["x"])
    with pytest.raises(MissingAPIKey):
        VoyageModel(api_key="", base_url=fake.base_url).embed(["x"])
    assert fake.requests == []


def test_key_from_the_environment(fake: FakeVoyage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", KEY)
    assert available() is True
    with VoyageModel(base_url=fake.base_url) as model:
        model.embed(["x"])
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_base_url_from_the_environment(fake: FakeVoyage, monkeypatch: pytest.MonkeyPatch) -> None:
    assert VoyageModel(api_key=KEY).base_url == voyage.DEFAULT_BASE_URL
    monkeypatch.setenv("VOYAGE_BASE_URL", fake.base_url + "/")
    with VoyageModel(api_key=KEY) as model:
        assert model.base_url == fake.base_url
        model.embed(["x"])
    assert [r.path for r in fake.requests] == ["/v1/multimodalembeddings"]
    with VoyageModel(api_key=KEY, base_url="http://127.0.0.1:9/v1") as model:
        assert model.base_url == "http://127.0.0.1:9/v1"  # an explicit base_url wins


def test_the_fake_can_answer_with_vectors_of_a_given_function(make) -> None:
    def vectors(contents, dimension, input_type):
        return np.stack([np.eye(dimension)[len(c[0]["text"])] for c in contents])

    with FakeVoyage(KEY, vectors=vectors) as server:
        got = make(base_url=server.base_url).embed(["a", "abc"])
    assert server.problems == []
    assert got[0, 1] == 1 and got[1, 3] == 1 and np.allclose(np.linalg.norm(got, axis=1), 1)


def test_rejected_key(fake: FakeVoyage, make) -> None:
    secret = "pa-not-the-right-key-1234"
    with pytest.raises(InvalidAPIKey) as caught:
        make(api_key=secret).embed(["x"])
    text = str(caught.value)
    assert "401" in text and "VOYAGE_API_KEY" in text and "is invalid" in text
    assert secret not in text
    assert len(fake.requests) == 1


# --- errors from the service


def test_400_detail_is_in_the_message(fake: FakeVoyage, make) -> None:
    fake.queue(Reply(400, {"detail": "Input at index 0 is too long."}))
    with pytest.raises(BadRequest, match=r"HTTP 400.*Input at index 0 is too long"):
        make().embed(["x"])


def test_422_validation_detail_is_in_the_message(fake: FakeVoyage, make) -> None:
    detail = [{"loc": ["body", "inputs", 0], "msg": "field required", "type": "missing"}]
    fake.queue(Reply(422, {"detail": detail}))
    with pytest.raises(BadRequest, match=r"HTTP 422.*body\.inputs\.0: field required"):
        make().embed(["x"])


def test_other_status_is_an_embedding_error_with_an_excerpt(fake: FakeVoyage, make, sleeps) -> None:
    fake.queue(Reply(500, "Internal failure in shard 7 " + "x" * 2000))
    with pytest.raises(EmbeddingError) as caught:
        make().embed(["x"])
    assert type(caught.value) is EmbeddingError
    assert "500" in str(caught.value) and "shard 7" in str(caught.value)
    assert len(str(caught.value)) < 500
    assert len(fake.requests) == 1 and sleeps == []


def test_key_echoed_by_the_service_is_scrubbed(fake: FakeVoyage, make) -> None:
    fake.queue(Reply(500, {"error": f"bad key {KEY}"}), Reply(400, {"detail": f"k={KEY}"}))
    for _ in range(2):
        with pytest.raises(EmbeddingError) as caught:
            make().embed(["x"])
        assert KEY not in str(caught.value) and "***" in str(caught.value)


# --- retries


def test_429_waits_the_retry_after_then_succeeds(fake: FakeVoyage, make, sleeps) -> None:
    fake.queue(Reply(429, {"detail": "Too many requests"}, {"Retry-After": "7"}))
    out = make().embed(["x"])
    np.testing.assert_allclose(out[0], text_vector("x"), rtol=1e-6)
    assert len(fake.requests) == 2
    assert fake.requests[0].body == fake.requests[1].body
    assert sleeps == [7.0]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_back_off_with_jitter(fake: FakeVoyage, make, sleeps, status) -> None:
    fake.queue(*[Reply(status, {"detail": "busy"})] * 3)
    out = make().embed(["x"])
    assert out.shape == (1, 1024)
    assert len(fake.requests) == 4 and len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0.0 <= delay <= voyage.BACKOFF_BASE * 2**attempt


def test_503_until_giving_up(fake: FakeVoyage, make, sleeps) -> None:
    fake.queue(*[Reply(503, {"detail": "unavailable"})] * 10)
    with pytest.raises(RateLimited) as caught:
        make(max_retries=3).embed(["x"])
    assert "4 attempt" in str(caught.value) and "HTTP 503" in str(caught.value)
    assert len(fake.requests) == 4 and len(sleeps) == 3


def test_no_retries_at_all(fake: FakeVoyage, make, sleeps) -> None:
    fake.queue(Reply(429, {"detail": "slow down"}, {"Retry-After": "1"}))
    with pytest.raises(RateLimited, match="HTTP 429"):
        make(max_retries=0).embed(["x"])
    assert len(fake.requests) == 1 and sleeps == []


def test_retry_after_beyond_reason_gives_up_at_once(fake: FakeVoyage, make, sleeps) -> None:
    fake.queue(Reply(429, {"detail": "quota"}, {"Retry-After": "3600"}))
    with pytest.raises(RateLimited, match="3600 s"):
        make().embed(["x"])
    assert len(fake.requests) == 1 and sleeps == []


def test_unparsable_retry_after_falls_back_to_backoff(fake: FakeVoyage, make, sleeps) -> None:
    fake.queue(Reply(503, {"detail": "x"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    make().embed(["x"])
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= voyage.BACKOFF_BASE


def test_timeout_is_retried(fake: FakeVoyage, make, sleeps) -> None:
    fake.queue(Reply(200, {"data": []}, delay=1.0))
    out = make(timeout=0.2).embed(["x"])
    np.testing.assert_allclose(out[0], text_vector("x"), rtol=1e-6)
    assert len(fake.requests) == 2 and len(sleeps) == 1


def test_connection_errors_are_retried_then_reported(sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = VoyageModel(
        api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, sleep=sleeps.append
    )
    with pytest.raises(RateLimited, match="ConnectError") as caught:
        model.embed(["x"])
    assert "3 attempt" in str(caught.value) and KEY not in str(caught.value)
    assert len(sleeps) == 2


# --- batching


def test_1500_inputs_take_two_requests_in_order(fake: FakeVoyage, make) -> None:
    texts = [f"text number {i}" for i in range(1500)]
    out = make(output_dimension=256).embed(texts)
    assert [len(body["inputs"]) for body in fake.bodies()] == [1000, 500]
    expected = np.stack([text_vector(t, 256) for t in texts])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def test_usage_is_summed_over_requests(fake: FakeVoyage, make) -> None:
    model = make(output_dimension=256)
    model.embed(["ab"] * 1001)
    assert len(fake.requests) == 2
    assert model.last_usage["text_tokens"] == 1001
    assert model.last_usage["total_tokens"] == 1001


def test_long_texts_are_split_by_the_token_budget(fake: FakeVoyage, make) -> None:
    texts = [c * 150_000 for c in "abc"]
    out = make().embed(texts)
    assert [len(body["inputs"]) for body in fake.bodies()] == [2, 1]
    np.testing.assert_allclose(out[2], text_vector("c" * 150_000), rtol=1e-6)


costs = st.lists(st.integers(min_value=0, max_value=60), max_size=80)


@given(costs, st.integers(min_value=1, max_value=7), st.integers(min_value=1, max_value=100))
def test_batches_cover_inputs_in_order_within_budgets(
    tokens: list[int], max_inputs: int, max_tokens: int
) -> None:
    sizes = [t * 3 for t in tokens]
    batches = plan_batches(tokens, sizes, max_inputs=max_inputs, max_tokens=max_tokens)
    assert [i for batch in batches for i in batch] == list(range(len(tokens)))
    for batch in batches:
        assert len(batch) >= 1
        if len(batch) > 1:
            assert len(batch) <= max_inputs
            assert sum(tokens[i] for i in batch) <= max_tokens
    for first, second in zip(batches, batches[1:], strict=False):
        joined = list(first) + [second.start]
        assert (
            len(joined) > max_inputs
            or sum(tokens[i] for i in joined) > max_tokens
            or sum(sizes[i] for i in joined) > voyage.MAX_REQUEST_BYTES
        )


# --- images


def test_image_arrives_as_a_png_data_url_that_decodes_back(fake: FakeVoyage, make) -> None:
    image = pattern()
    out = make().embed(["a caption", image])
    assert out.shape == (2, 1024)
    [url] = sent_images(fake)
    assert url.startswith("data:image/png;base64,")
    decoded = decode_data_url(url)
    assert decoded.size == image.size
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))
    content = fake.bodies()[0]["inputs"][1]["content"]
    np.testing.assert_allclose(out[1], fake_vector(content, 1024, "document"), rtol=1e-6)


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_accepted_formats_are_kept(fake: FakeVoyage, make, fmt: str, media_type: str) -> None:
    image = reopened(pattern((40, 30)), fmt)
    make().embed([image])
    [url] = sent_images(fake)
    assert url.startswith(f"data:{media_type};base64,")
    assert decode_data_url(url).size == (40, 30)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("BMP", "RGB"), ("TIFF", "CMYK"), (None, "F"), (None, "I"), (None, "RGBA")]
)
def test_other_images_are_sent_as_png(fake: FakeVoyage, make, fmt, mode) -> None:
    image = pattern((20, 10), mode if mode not in ("F", "I") else "L").convert(mode)
    if fmt is not None:
        image = reopened(image, fmt)
    make().embed([image])
    [url] = sent_images(fake)
    assert url.startswith("data:image/png;base64,")
    assert decode_data_url(url).size == (20, 10)


def test_images_above_16_megapixels_are_scaled_down(fake: FakeVoyage, make) -> None:
    image = Image.new("L", (5000, 4000), 128)
    make().embed([image])
    [url] = sent_images(fake)
    width, height = decode_data_url(url).size
    assert width * height <= 16_000_000
    assert abs(width / height - 1.25) < 0.01 and width > 4400


def test_exif_orientation_is_applied_and_mpo_sent_as_jpeg() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    pattern((40, 30)).save(buffer, format="JPEG", exif=exif)
    rotated = Image.open(io.BytesIO(buffer.getvalue()))
    assert decode_data_url(image_data_url(rotated)).size == (30, 40)
    phone = reopened(pattern((40, 30)), "JPEG")
    phone.format = "MPO"
    url = image_data_url(phone)
    assert url.startswith("data:image/jpeg;base64,")
    assert decode_data_url(url).size == (40, 30)


def test_image_data_url_helper() -> None:
    url = image_data_url(reopened(pattern(), "JPEG"))
    assert url.startswith("data:image/jpeg;base64,")
    assert decode_data_url(url).size == (32, 24)


def test_images_are_split_by_pixel_tokens(fake: FakeVoyage, make) -> None:
    image = Image.new("L", (4000, 4000), 7)
    out = make().embed([image] * 12)
    assert [len(body["inputs"]) for body in fake.bodies()] == [11, 1]
    assert np.allclose(out, out[0])


# --- answers unfit for Postgres


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("wrong_dimension", InvalidVector, "1024 dimensions"),
        ("nan", InvalidVector, "NaN"),
        ("short", InvalidVector, "expected 3 vectors"),
        ("repeated_index", EmbeddingError, "index"),
    ],
)
def test_unfit_answers_are_refused(fake: FakeVoyage, make, mode, error, message) -> None:
    fake.mode = mode
    with pytest.raises(error, match=message):
        make().embed(["a", "b", "c"])


def test_answer_without_data_is_an_error(fake: FakeVoyage, make) -> None:
    fake.queue(Reply(200, {"detail": "ok?"}))
    with pytest.raises(EmbeddingError, match="data list"):
        make().embed(["x"])


# --- the rerank endpoint (POST /v1/rerank)


@pytest.fixture
def reranker(fake: FakeVoyage, sleeps: list[float]) -> Iterator[voyage.VoyageReranker]:
    client = voyage.VoyageReranker(KEY, base_url=fake.base_url, sleep=sleeps.append)
    yield client
    client.close()


DOCS = ["the merge base of two commits", "rebase onto another branch", "git rebase --onto main"]


def test_rerank_sends_the_documented_body_and_orders_by_relevance(fake, reranker) -> None:
    order = reranker.rerank("git rebase onto", DOCS)
    # the fake scores the share of the query's words in each document: 3/3, 2/3, 0/3
    assert order == [(2, 1.0), (1, pytest.approx(2 / 3)), (0, 0.0)]
    (seen,) = fake.requests
    assert seen.path == "/v1/rerank"
    assert seen.body == {"query": "git rebase onto", "documents": DOCS,
                         "model": voyage.RERANK_MODEL, "truncation": True}  # fmt: skip
    assert reranker.last_usage["total_tokens"] > 0


def test_rerank_top_k_returns_that_many(fake, reranker) -> None:
    assert [i for i, _ in reranker.rerank("rebase", DOCS, top_k=2)] == [1, 2]
    assert fake.requests[0].body["top_k"] == 2


def test_rerank_refuses_what_the_api_would_before_sending(fake, reranker) -> None:
    with pytest.raises(ValueError, match="empty"):
        reranker.rerank("  ", DOCS)
    with pytest.raises(ValueError, match="at most 1000"):
        reranker.rerank("q", ["d"] * 1001)
    assert reranker.rerank("q", []) == []
    assert fake.requests == []


def test_rerank_waits_out_a_429_and_reports_a_rejected_key(fake, reranker, sleeps) -> None:
    fake.queue(Reply(429, {"detail": "Too many requests"}, {"Retry-After": "3"}))
    assert reranker.rerank("merge", DOCS)[0][0] == 0
    assert sleeps == [3.0] and len(fake.requests) == 2
    bad = voyage.VoyageReranker("pa-wrong", base_url=fake.base_url)
    with pytest.raises(InvalidAPIKey, match="401"):
        bad.rerank("merge", DOCS)
    bad.close()


def test_rerank_refuses_an_answer_that_does_not_account_for_its_documents(fake, reranker):
    fake.queue(Reply(200, {"object": "list", "data": [{"index": 0, "relevance_score": 0.5}] * 3,
                           "model": voyage.RERANK_MODEL, "usage": {}}))  # fmt: skip
    with pytest.raises(EmbeddingError, match="repeated index"):
        reranker.rerank("merge", DOCS)
    fake.queue(Reply(200, {"object": "list", "data": [{"index": 0, "relevance_score": 0.5}],
                           "model": voyage.RERANK_MODEL, "usage": {}}))  # fmt: skip
    with pytest.raises(EmbeddingError, match="re-ranked 1 documents, expected 3"):
        reranker.rerank("merge", DOCS)


def test_the_fake_rejects_a_rerank_body_the_api_would(fake) -> None:
    with httpx.Client() as client:
        r = client.post(
            f"{fake.base_url}/rerank", json={"query": "q", "documents": [], "model": "rerank-2.5"},
            headers={"Authorization": f"Bearer {KEY}"},
        )  # fmt: skip
    assert r.status_code == 400
    assert fake.problems and "documents" in fake.problems[0]
    fake.problems.clear()


def test_api_rerank_reorders_the_head_and_keeps_the_tail(fake, reranker) -> None:
    from lib.harness.rerank import ApiRerank

    texts = dict(zip([11, 12, 13, 14], [*DOCS, "tail"], strict=True))
    r = ApiRerank(reranker, lambda keys: [texts[k] for k in keys], top=3)
    keys, scores = r("git rebase onto", [11, 12, 13, 14], [0.9, 0.8, 0.7, 0.6])
    assert keys == [13, 12, 11, 14] and scores[-1] == 0.6
    assert r.label == f"Voyage {voyage.RERANK_MODEL} re-rank of the top 3"
