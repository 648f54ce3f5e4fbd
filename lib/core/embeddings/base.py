"""The one interface every embedding backend implements, and the checks on what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

InputType = Literal["query", "document"]
Modality = Literal["text", "image"]
EmbeddingInput = str | Image.Image


class EmbeddingError(Exception):
    """An embedding could not be made; the message says why and what to do."""


class MissingAPIKey(EmbeddingError):
    """The backend needs an API key and none is set."""


class InvalidAPIKey(EmbeddingError):
    """The service rejected the API key (HTTP 401)."""


class BadRequest(EmbeddingError):
    """The service rejected the request itself (HTTP 400 or 422)."""


class RateLimited(EmbeddingError):
    """The service kept answering 429 or was unavailable after every retry."""


class UnsupportedInput(EmbeddingError):
    """The model cannot embed this kind of input (an image for a text-only model)."""


class ModelUnavailable(EmbeddingError):
    """The model's weights are not on this machine."""


class InvalidVector(ValueError):
    """A vector is not fit for Postgres: wrong shape, wrong dimension, or not finite."""


@dataclass(frozen=True)
class ModelInfo:
    """What the app needs to know about a model before it loads it."""

    name: str
    dimension: int
    modalities: frozenset[str]
    normalized: bool
    description: str
    max_input_tokens: int | None = None


@runtime_checkable
class EmbeddingModel(Protocol):
    """An embedding model: a name, a dimension, what it can embed, and `embed`."""

    info: ModelInfo

    def embed(
        self, inputs: Sequence[EmbeddingInput], *, input_type: InputType = "document"
    ) -> np.ndarray:
        """Embed a batch of texts and/or images into a float32 array of shape (n, dimension)."""
        ...


def modality_of(item: EmbeddingInput) -> Modality:
    if isinstance(item, str):
        return "text"
    if isinstance(item, Image.Image):
        return "image"
    raise UnsupportedInput(f"cannot embed an object of type {type(item).__name__}")


def require_modalities(info: ModelInfo, inputs: Sequence[EmbeddingInput]) -> None:
    """Raise UnsupportedInput if any input is of a kind the model cannot embed."""
    for item in inputs:
        kind = modality_of(item)
        if kind not in info.modalities:
            raise UnsupportedInput(
                f"{info.name} embeds {', '.join(sorted(info.modalities))} only, not {kind}s"
            )


def checked_vectors(vectors: np.ndarray, dimension: int, count: int | None = None) -> np.ndarray:
    """Return `vectors` as a C-contiguous float32 (n, dimension) array, or raise InvalidVector."""
    arr = np.asarray(vectors)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidVector(f"expected a 2-D array of vectors, got shape {arr.shape}")
    if arr.shape[1] != dimension:
        raise InvalidVector(f"expected {dimension} dimensions, got {arr.shape[1]}")
    if count is not None and arr.shape[0] != count:
        raise InvalidVector(f"expected {count} vectors, got {arr.shape[0]}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise InvalidVector(f"{bad} vector(s) contain NaN or infinity")
    return arr
