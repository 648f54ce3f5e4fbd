"""voyage-multimodal-3.5 over Voyage AI's HTTP API: texts and images in one vector space.

The API key comes from the constructor or the VOYAGE_API_KEY environment variable; the base
URL from the constructor, else VOYAGE_BASE_URL, else Voyage's own (tests point it at a local
fake of the API, tests/voyage_fake.py). A missing
key does not stop construction (so the app can show the model's `info`); the first `embed`
raises MissingAPIKey. Use `available()` to ask beforehand.

Request and response follow Voyage's documented multimodal endpoint
(POST {base_url}/multimodalembeddings). Large batches are split to stay within the documented
per-request limits: at most 1,000 inputs and 320,000 tokens, where an image counts one token
per 560 pixels. Images above 16 million pixels are scaled down to fit, as the API rejects them.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageOps

from .base import (
    BadRequest,
    EmbeddingError,
    EmbeddingInput,
    InputType,
    InvalidAPIKey,
    InvalidVector,
    MissingAPIKey,
    ModelInfo,
    RateLimited,
    UnsupportedInput,
    checked_vectors,
)

MODEL_NAME = "voyage-multimodal-3.5"
API_KEY_ENV = "VOYAGE_API_KEY"
BASE_URL_ENV = "VOYAGE_BASE_URL"
DEFAULT_BASE_URL = "https://api.voyageai.com/v1"
OUTPUT_DIMENSIONS = (256, 512, 1024, 2048)

MAX_INPUTS_PER_REQUEST = 1000
MAX_TOKENS_PER_REQUEST = 320_000
MAX_TOKENS_PER_INPUT = 32_000
PIXELS_PER_TOKEN = 560
MAX_IMAGE_PIXELS = 16_000_000
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Our own cap, not the API's: keeps each upload well inside the request timeout.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
# Room for the prompt Voyage prepends for input_type and per-input special tokens.
TOKEN_OVERHEAD_PER_INPUT = 16

RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
MAX_RETRY_AFTER = 120.0

_IMAGE_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
# Phone JPEGs often open as MPO (JPEG with extra frames); the first frame is a plain JPEG.
_SAME_AS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP", "GIF": "GIF"}
_EXIF_ORIENTATION = 0x0112
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})


def available() -> bool:
    """True when VOYAGE_API_KEY is set, so the model can be used."""
    return bool(os.environ.get(API_KEY_ENV))


def configured_base_url() -> str:
    """Where the API is: VOYAGE_BASE_URL if set, else Voyage's own."""
    return os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def model_info(output_dimension: int = 1024) -> ModelInfo:
    """The ModelInfo for voyage-multimodal-3.5 at the given output dimension."""
    _check_dimension(output_dimension)
    return ModelInfo(
        name=MODEL_NAME,
        dimension=output_dimension,
        modalities=frozenset({"text", "image"}),
        normalized=True,
        description=(
            "Voyage AI voyage-multimodal-3.5 over its HTTP API: texts and images in one "
            f"space, {output_dimension} dimensions; needs {API_KEY_ENV}"
        ),
        max_input_tokens=MAX_TOKENS_PER_INPUT,
    )


def _check_dimension(output_dimension: int) -> None:
    if output_dimension not in OUTPUT_DIMENSIONS:
        allowed = ", ".join(map(str, OUTPUT_DIMENSIONS))
        raise ValueError(
            f"{MODEL_NAME} output_dimension must be one of {allowed}, not {output_dimension!r}"
        )


@dataclass(frozen=True)
class _Part:
    """One input as the API wants it, with what it costs against the per-request limits."""

    content: dict[str, str]
    tokens: int
    size: int


def _text_part(text: str) -> _Part:
    encoded = len(text.encode("utf-8"))
    # A byte-level BPE token is at least one byte, so the byte count bounds the token count.
    return _Part({"type": "text", "text": text}, encoded + TOKEN_OVERHEAD_PER_INPUT, encoded + 64)


def _fit_pixels(image: Image.Image) -> Image.Image:
    width, height = image.size
    if width * height <= MAX_IMAGE_PIXELS:
        return image
    scale = math.sqrt(MAX_IMAGE_PIXELS / (width * height))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality="keep" if image.format == "JPEG" else 95)
    elif fmt == "WEBP":
        image.save(buffer, format="WEBP", quality=90)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def _png_ready(image: Image.Image) -> Image.Image:
    if image.mode in _PNG_MODES:
        return image
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _upright(image: Image.Image) -> Image.Image:
    if image.getexif().get(_EXIF_ORIENTATION, 1) in (0, 1):
        return image
    return ImageOps.exif_transpose(image)


def _encoded_image(image: Image.Image) -> tuple[str, tuple[int, int]]:
    fmt = _SAME_AS.get((image.format or "").upper(), "")
    fitted = _fit_pixels(_upright(image))
    data: bytes | None = None
    if fmt:
        try:
            data = _encode(fitted, fmt)
        except (OSError, ValueError):
            data = None
    if data is None:
        fmt = "PNG"
        data = _encode(_png_ready(fitted), fmt)
    if len(data) > MAX_IMAGE_BYTES and fmt != "JPEG":
        fmt = "JPEG"
        data = _encode(fitted.convert("RGB"), fmt)
    if len(data) > MAX_IMAGE_BYTES:
        raise UnsupportedInput(
            f"an image of {image.size[0]}x{image.size[1]} pixels stays above Voyage's "
            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB limit even as JPEG; resize it first"
        )
    url = f"data:{_IMAGE_FORMATS[fmt]};base64,{base64.b64encode(data).decode('ascii')}"
    return url, fitted.size


def image_data_url(image: Image.Image) -> str:
    """The image as a base64 data URL: in its own format when the API accepts it, else PNG.

    EXIF orientation is applied and images above 16 million pixels are scaled down first;
    one still above 20 MB is sent as JPEG.
    """
    return _encoded_image(image)[0]


def _image_part(image: Image.Image) -> _Part:
    url, (width, height) = _encoded_image(image)
    tokens = math.ceil(width * height / PIXELS_PER_TOKEN) + TOKEN_OVERHEAD_PER_INPUT
    return _Part({"type": "image_base64", "image_base64": url}, tokens, len(url) + 64)


def _to_part(item: EmbeddingInput) -> _Part:
    if isinstance(item, str):
        return _text_part(item)
    if isinstance(item, Image.Image):
        return _image_part(item)
    raise UnsupportedInput(f"cannot embed an object of type {type(item).__name__}")


def plan_batches(
    tokens: Sequence[int],
    sizes: Sequence[int],
    *,
    max_inputs: int = MAX_INPUTS_PER_REQUEST,
    max_tokens: int = MAX_TOKENS_PER_REQUEST,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> list[range]:
    """Split inputs, in order, into consecutive runs that each fit one request.

    An input that alone exceeds a budget gets a request of its own; the API then decides.
    """
    batches: list[range] = []
    start = 0
    used_tokens = used_bytes = 0
    for i, (cost, size) in enumerate(zip(tokens, sizes, strict=True)):
        full = (
            i - start >= max_inputs
            or used_tokens + cost > max_tokens
            or used_bytes + size > max_bytes
        )
        if full and i > start:
            batches.append(range(start, i))
            start, used_tokens, used_bytes = i, 0, 0
        used_tokens += cost
        used_bytes += size
    if len(tokens) > start:
        batches.append(range(start, len(tokens)))
    return batches


class VoyageModel:
    """voyage-multimodal-3.5 through Voyage AI's multimodal embeddings endpoint.

    `api_key` defaults to VOYAGE_API_KEY; without one, the first `embed` raises MissingAPIKey.
    `base_url` defaults to VOYAGE_BASE_URL, else Voyage's own.
    `timeout` applies to each HTTP request; 429/502/503/504, timeouts and connection errors are
    retried up to `max_retries` times (Retry-After when given, else exponential backoff with
    full jitter, waited through `sleep`). `last_usage` holds the usage of the last `embed`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        output_dimension: int = 1024,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        truncation: bool = True,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_dimension(output_dimension)
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        self.info = model_info(output_dimension)
        self._api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.base_url = (base_url or configured_base_url()).rstrip("/")
        self._url = self.base_url + "/multimodalembeddings"
        self._timeout = timeout
        self._max_retries = max_retries
        self._truncation = truncation
        self._client = client
        self._owns_client = client is None
        self._sleep = sleep
        self._random = random.Random()
        self.last_usage: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"VoyageModel(output_dimension={self.info.dimension}, url={self._url!r})"

    def __enter__(self) -> VoyageModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client this model opened (a client passed in is left open)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def embed(
        self, inputs: Sequence[EmbeddingInput], *, input_type: InputType = "document"
    ) -> np.ndarray:
        """Embed texts and/or images into a float32 array of shape (len(inputs), dimension).

        Raises MissingAPIKey, InvalidAPIKey, BadRequest, RateLimited, EmbeddingError, or
        InvalidVector when the service answers with vectors unfit for Postgres.
        """
        if input_type not in ("query", "document"):
            raise ValueError(f"input_type must be 'query' or 'document', not {input_type!r}")
        key = self._key()
        dimension = self.info.dimension
        if len(inputs) == 0:
            return np.empty((0, dimension), dtype=np.float32)
        parts = [_to_part(item) for item in inputs]
        out = np.empty((len(parts), dimension), dtype=np.float32)
        usage: dict[str, int] = {}
        for batch in plan_batches([p.tokens for p in parts], [p.size for p in parts]):
            body = {
                "inputs": [{"content": [parts[i].content]} for i in batch],
                "model": MODEL_NAME,
                "input_type": input_type,
                "output_dimension": dimension,
                "truncation": self._truncation,
            }
            answer = self._post(key, body)
            out[batch.start : batch.stop] = self._vectors(answer, len(batch))
            for name, value in (answer.get("usage") or {}).items():
                if isinstance(value, int):
                    usage[name] = usage.get(name, 0) + value
        self.last_usage = usage
        return checked_vectors(out, dimension, len(inputs))

    def _key(self) -> str:
        key = self._api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise MissingAPIKey(
                f"{MODEL_NAME} needs an API key: set {API_KEY_ENV} (from dash.voyageai.com) "
                "in the environment, or pass api_key"
            )
        self._api_key = key
        return key

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        return self._client

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _delays(self) -> Iterator[float]:
        for attempt in range(self._max_retries):
            yield self._random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))

    def _post(self, key: str, body: dict[str, Any], url: str | None = None) -> dict[str, Any]:
        url = url or self._url
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        delays = self._delays()
        attempts = 0
        while True:
            attempts += 1
            retry_after: float | None = None
            try:
                response = self._http().post(
                    url, content=payload, headers=headers, timeout=self._timeout
                )
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem = f"{type(exc).__name__} talking to {url}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._answer(response)
                problem = f"HTTP {response.status_code} from {url}"
                retry_after = _retry_after(response)
                if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                    raise RateLimited(
                        self._scrub(
                            f"Voyage asked to wait {retry_after:.0f} s ({problem}); giving up "
                            f"rather than wait over {MAX_RETRY_AFTER:.0f} s. Try again later."
                        )
                    )
            delay = next(delays, None)
            if delay is None:
                raise RateLimited(
                    self._scrub(
                        f"Voyage did not answer after {attempts} attempt(s); last: {problem}. "
                        "The service is rate-limiting or unavailable: wait and try again."
                    )
                )
            self._sleep(retry_after if retry_after is not None else delay)

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 401:
            raise InvalidAPIKey(
                self._scrub(
                    f"Voyage rejected the API key (HTTP 401: {_detail(response)}); "
                    f"check {API_KEY_ENV}"
                )
            )
        if status in (400, 422):
            raise BadRequest(
                self._scrub(f"Voyage rejected the request (HTTP {status}): {_detail(response)}")
            )
        if status != 200:
            raise EmbeddingError(
                self._scrub(f"Voyage answered HTTP {status}: {_excerpt(response.text)}")
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise EmbeddingError(
                self._scrub(f"Voyage answered with invalid JSON: {_excerpt(response.text)}")
            ) from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise EmbeddingError(
                self._scrub(f"Voyage answered without a data list: {_excerpt(response.text)}")
            )
        return answer

    def _vectors(self, answer: dict[str, Any], count: int) -> np.ndarray:
        data = answer["data"]
        if len(data) != count:
            raise InvalidVector(f"expected {count} vectors, got {len(data)}")
        rows: list[np.ndarray | None] = [None] * count
        for position, item in enumerate(data):
            index = item.get("index", position) if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < count or rows[index] is not None:
                raise EmbeddingError(f"Voyage answered with a bad or repeated index: {index!r}")
            try:
                row = np.asarray(item.get("embedding"), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidVector(f"vector {index} is not a list of numbers") from exc
            rows[index] = checked_vectors(row, self.info.dimension)[0]
        return np.stack([r for r in rows if r is not None])


RERANK_MODEL = "rerank-2.5"
RERANK_MAX_DOCUMENTS = 1000


class VoyageReranker:
    """Voyage AI's rerank endpoint (POST {base_url}/rerank): a cross-encoder scoring each
    (query, document) pair. Key, base URL, retries and errors as `VoyageModel`'s (one HTTP
    client shared with it). `last_usage` holds the usage of the last `rerank`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = RERANK_MODEL,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self._api = VoyageModel(
            api_key, base_url=base_url, timeout=timeout, max_retries=max_retries,
            client=client, sleep=sleep,
        )  # fmt: skip
        self._url = self._api.base_url + "/rerank"
        self.last_usage: dict[str, int] = {}

    def close(self) -> None:
        self._api.close()

    def rerank(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        """(index into `documents`, relevance score), most relevant first; `top_k` of them
        when given. Raises as `VoyageModel.embed` does, and EmbeddingError on an answer
        that does not account for the documents it was sent."""
        if not query.strip():
            raise ValueError("the query to re-rank by is empty")
        if len(documents) > RERANK_MAX_DOCUMENTS:
            raise ValueError(f"at most {RERANK_MAX_DOCUMENTS} documents per request")
        if not documents:
            return []
        key = self._api._key()
        body: dict[str, Any] = {
            "query": query, "documents": list(documents), "model": self.model,
            "truncation": True,
        }  # fmt: skip
        if top_k is not None:
            body["top_k"] = int(top_k)
        answer = self._api._post(key, body, self._url)
        want = len(documents) if top_k is None else min(int(top_k), len(documents))
        out: list[tuple[int, float]] = []
        seen: set[int] = set()
        for item in answer["data"]:
            index = item.get("index") if isinstance(item, dict) else None
            score = item.get("relevance_score") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(documents) or index in seen:
                raise EmbeddingError(f"Voyage answered with a bad or repeated index: {index!r}")
            if not isinstance(score, int | float) or not math.isfinite(score):
                raise EmbeddingError(f"Voyage answered with a bad relevance score: {score!r}")
            seen.add(index)
            out.append((index, float(score)))
        if len(out) != want:
            raise EmbeddingError(f"Voyage re-ranked {len(out)} documents, expected {want}")
        self.last_usage = {
            k: v for k, v in (answer.get("usage") or {}).items() if isinstance(v, int)
        }
        return sorted(out, key=lambda x: (-x[1], x[0]))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        return _excerpt(response.text) or "no detail given"
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', d)}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return _excerpt(str(detail))


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
