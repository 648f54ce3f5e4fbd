"""A local stand-in for Voyage AI's multimodal embeddings endpoint, strict about what it accepts.

It checks every request against the documented API (path, method, headers, body fields, input
shapes, data URLs, per-request limits) and records anything wrong in `problems`, answering
such requests with a 400 like the real service. Valid requests get deterministic unit vectors
(`fake_vector`, random directions; or those of a `vectors` function, such as
tests/fake_multimodal.py's, which make sense on a map), returned in reverse order so that
clients must use each item's `index`.
Scripted replies (`queue`) stand in for errors, rate limits and slow answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import numpy as np
from PIL import Image

PATH = "/v1/multimodalembeddings"
RERANK_PATH = "/v1/rerank"
# rerank models and their documented total-token budget per request
# (query tokens × documents + the documents' tokens)
RERANK_MODELS = {"rerank-2.5": 600_000, "rerank-2.5-lite": 600_000, "rerank-2": 600_000,
                 "rerank-2-lite": 300_000}  # fmt: skip
RERANK_KEYS = {"query", "documents", "model", "top_k", "return_documents", "truncation"}
MODEL = "voyage-multimodal-3.5"
DIMENSIONS = (256, 512, 1024, 2048)
BODY_KEYS = {"inputs", "model", "input_type", "truncation", "output_dimension", "output_dtype"}
DATA_URL = re.compile(r"data:(image/(?:png|jpeg|webp|gif));base64,([A-Za-z0-9+/=]+)")
PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}

Mode = Literal["ok", "nan", "wrong_dimension", "short", "repeated_index"]
# (each input's `content`, dimension, input_type) -> unit vectors, one row per input
Vectors = Callable[[list[list[dict[str, str]]], int, "str | None"], np.ndarray]


def fake_vector(
    content: list[dict[str, str]], dimension: int, input_type: str | None
) -> np.ndarray:
    """The unit vector the fake returns for one input's `content`, as float64."""
    key = json.dumps([content, input_type], sort_keys=True).encode()
    seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return vector / np.linalg.norm(vector)


def decode_data_url(url: str) -> Image.Image:
    """The image inside a data URL, checked to be in the format its media type claims."""
    match = DATA_URL.fullmatch(url)
    if match is None:
        raise ValueError(f"not a PNG/JPEG/WEBP/GIF base64 data URL: {url[:40]!r}")
    raw = base64.b64decode(match.group(2), validate=True)
    image = Image.open(io.BytesIO(raw))
    image.load()
    if image.format != PIL_FORMATS[match.group(1)]:
        raise ValueError(f"data URL says {match.group(1)} but holds {image.format}")
    return image


@dataclass
class Reply:
    """One scripted answer, used instead of embeddings for the next valid request."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeVoyage:
    """The fake API on 127.0.0.1 at a free port; use as a context manager."""

    def __init__(self, key: str = "test-key", vectors: Vectors | None = None) -> None:
        self.key = key
        self.vectors = vectors
        self.mode: Mode = "ok"
        self.requests: list[Seen] = []
        self.problems: list[str] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeVoyage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def bodies(self) -> list[dict[str, Any]]:
        return [seen.body for seen in self.requests]

    def _problem(self, text: str) -> str:
        with self._lock:
            self.problems.append(text)
        return text

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
        if seen.method != "POST":
            return Reply(405, {"detail": self._problem(f"method {seen.method} not allowed")})
        if seen.path not in (PATH, RERANK_PATH):
            return Reply(404, {"detail": self._problem(f"no route {seen.path}")})
        auth = seen.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:]:
            return Reply(401, {"detail": self._problem("no Bearer Authorization header")})
        if auth[7:] != self.key:
            return Reply(401, {"detail": f"Provided API key {auth[7:]} is invalid."})
        if not seen.headers.get("content-type", "").startswith("application/json"):
            return Reply(400, {"detail": self._problem("Content-Type is not application/json")})
        try:
            body = seen.body
            usage = self._check_rerank(body) if seen.path == RERANK_PATH else self._check(body)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            return Reply(400, {"detail": self._problem(f"bad request: {exc}")})
        scripted = self._next_reply()
        if scripted is not None:
            return scripted
        if seen.path == RERANK_PATH:
            return Reply(200, self._reranked(body, usage))
        try:
            return Reply(200, self._embeddings(body, usage))
        except Exception as exc:  # a broken `vectors` function must fail the test, not hang it
            return Reply(500, {"detail": self._problem(f"vectors failed: {exc!r}")})

    def _check(self, body: Any) -> dict[str, int]:
        assert isinstance(body, dict), "body is not a JSON object"
        assert set(body) <= BODY_KEYS, f"unknown fields {sorted(set(body) - BODY_KEYS)}"
        assert body.get("model") == MODEL, f"model {body.get('model')!r}"
        assert body.get("input_type") in (None, "query", "document"), "input_type"
        assert body.get("output_dimension") in (None, *DIMENSIONS), "output_dimension"
        assert isinstance(body.get("truncation", True), bool), "truncation is not a boolean"
        inputs = body["inputs"]
        assert isinstance(inputs, list) and 0 < len(inputs) <= 1000, "inputs: 1 to 1000 items"
        text_tokens = image_pixels = total_tokens = 0
        for item in inputs:
            assert isinstance(item, dict) and set(item) == {"content"}, f"input {item!r:.60}"
            content = item["content"]
            assert isinstance(content, list) and content, "content must be a non-empty list"
            item_tokens = 0
            for piece in content:
                kind = piece.get("type")
                if kind == "text":
                    assert set(piece) == {"type", "text"}, f"text piece keys {sorted(piece)}"
                    assert isinstance(piece["text"], str), "text is not a string"
                    tokens = len(piece["text"].encode()) // 4 + 1
                    text_tokens += tokens
                    item_tokens += tokens
                elif kind == "image_base64":
                    assert set(piece) == {"type", "image_base64"}, f"image keys {sorted(piece)}"
                    try:
                        image = decode_data_url(piece["image_base64"])
                    except (binascii.Error, OSError) as exc:
                        raise ValueError(f"image does not decode: {exc}") from exc
                    pixels = image.size[0] * image.size[1]
                    assert pixels <= 16_000_000, f"image of {pixels} pixels"
                    image_pixels += pixels
                    item_tokens += -(-pixels // 560)
                else:
                    raise ValueError(f"content type {kind!r}")
            total_tokens += item_tokens
        assert total_tokens <= 320_000, f"{total_tokens} tokens in one request"
        return {
            "text_tokens": text_tokens,
            "image_pixels": image_pixels,
            "total_tokens": total_tokens,
        }

    def _check_rerank(self, body: Any) -> dict[str, int]:
        assert isinstance(body, dict), "body is not a JSON object"
        assert set(body) <= RERANK_KEYS, f"unknown fields {sorted(set(body) - RERANK_KEYS)}"
        assert {"query", "documents", "model"} <= set(body), "query, documents and model"
        assert body["model"] in RERANK_MODELS, f"model {body['model']!r}"
        assert isinstance(body["query"], str) and body["query"], "query is a non-empty string"
        docs = body["documents"]
        assert isinstance(docs, list) and 0 < len(docs) <= 1000, "documents: 1 to 1000 items"
        assert all(isinstance(d, str) for d in docs), "documents are strings"
        top_k = body.get("top_k")
        assert top_k is None or (isinstance(top_k, int) and top_k > 0), "top_k"
        for flag in ("return_documents", "truncation"):
            assert isinstance(body.get(flag, True), bool), f"{flag} is not a boolean"
        query_tokens = len(body["query"].encode()) // 4 + 1
        doc_tokens = [len(d.encode()) // 4 + 1 for d in docs]
        if not body.get("truncation", True):
            assert query_tokens <= 8000, f"query of {query_tokens} tokens"
        total = query_tokens * len(docs) + sum(doc_tokens)
        budget = RERANK_MODELS[body["model"]]
        assert total <= budget, f"{total} tokens in one request (at most {budget})"
        return {"total_tokens": total}

    def _reranked(self, body: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
        """Relevance: the share of the query's words found in the document (a stand-in a
        test can predict), most relevant first, ties by index."""
        words = set(re.findall(r"\w+", body["query"].lower()))
        scores = [
            len(words & set(re.findall(r"\w+", d.lower()))) / max(1, len(words))
            for d in body["documents"]
        ]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        order = order[: body.get("top_k") or len(order)]
        data = []
        for i in order:
            item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            if body.get("return_documents"):
                item["document"] = body["documents"][i]
            data.append(item)
        return {"object": "list", "data": data, "model": body["model"], "usage": usage}

    def _embeddings(self, body: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
        dimension = body.get("output_dimension") or 1024
        input_type = body.get("input_type")
        contents = [item["content"] for item in body["inputs"]]
        if self.vectors is None:
            rows = [fake_vector(content, dimension, input_type) for content in contents]
        else:
            rows = list(self.vectors(contents, dimension, input_type))
        data: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            vector = [float(x) for x in row]
            if self.mode == "wrong_dimension":
                vector = vector[:-1]
            data.append({"object": "embedding", "embedding": vector, "index": index})
        if self.mode == "nan":
            data[-1]["embedding"][0] = float("nan")
        elif self.mode == "short":
            data.pop()
        elif self.mode == "repeated_index" and len(data) > 1:
            data[1]["index"] = 0
        return {"object": "list", "data": data[::-1], "model": MODEL, "usage": usage}


def _handler(fake: FakeVoyage) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = fake.answer(Seen(self.command, self.path, headers, body))
            time.sleep(reply.delay)
            payload = reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body)
            data = payload if isinstance(payload, bytes) else payload.encode()
            try:
                self.send_response(reply.status)
                content_type = "text/plain" if isinstance(reply.body, str) else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_POST = do_GET = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
