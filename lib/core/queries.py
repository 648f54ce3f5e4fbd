"""Live queries: a typed text or an uploaded image, checked, then embedded by the model.

Each check raises `QueryError` with a message for the page; a text longer than the model
reads is not an error but a `TextQuery` that says what the model actually read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from lib.core.embeddings.base import EmbeddingModel, ModelInfo, UnsupportedInput, checked_vectors
from lib.core.uploads import UploadError, load_upload

MAX_CHARS = 10_000


class QueryError(ValueError):
    """The query cannot be embedded; the message says why."""


@dataclass(frozen=True)
class TextQuery:
    text: str
    read: str | None = None  # what the model reads when it truncates `text`, else None

    @property
    def truncated(self) -> bool:
        return self.read is not None

    def note(self, info: ModelInfo) -> str | None:
        """What the learner should know about how the model read the text (plain text)."""
        if self.read is None:
            return None
        cut = len(self.text) - len(self.read)
        return (
            f"{info.name} reads at most {info.max_input_tokens} tokens, so it embedded only the "
            f"start of your text and ignored about {cut:,} characters. "
            f"It stopped at: “…{self.read[-80:]}”"
        )


def check_text(model: EmbeddingModel, text: str | None) -> TextQuery:
    """The stripped text, and what the model will read of it if it truncates."""
    text = (text or "").strip()
    if not text:
        raise QueryError("Type a few words to search for: the query is empty.")
    if len(text) > MAX_CHARS:
        raise QueryError(
            f"The query is {len(text):,} characters; keep it under {MAX_CHARS:,} "
            f"({model.info.name} reads only the first few hundred words anyway)."
        )
    truncated = getattr(model, "truncated", None)
    read = truncated(text) if callable(truncated) else None
    return TextQuery(text, read)


def text_vector(model: EmbeddingModel, text: str) -> np.ndarray:
    """The model's query vector (d,) for a text that passed `check_text`."""
    return checked_vectors(model.embed([text], input_type="query"), model.info.dimension, 1)[0]


def embeds_images(model: EmbeddingModel) -> bool:
    return "image" in model.info.modalities


def text_only_message(model: EmbeddingModel) -> str:
    return (
        f"{model.info.name} embeds text only, so it cannot place an image on its map. "
        "Pick a model that embeds images (CLIP or voyage-multimodal-3.5) in the sidebar, "
        "if this machine has one."
    )


def image_input(model: EmbeddingModel, data: bytes, name: str = "the file") -> Image.Image:
    """The uploaded image, checked (UploadError is a QueryError's message), for this model."""
    try:
        image = load_upload(data, name)
    except UploadError as e:
        raise QueryError(str(e)) from e
    if not embeds_images(model):
        raise QueryError(text_only_message(model))
    return image


def image_vector(model: EmbeddingModel, image: Image.Image) -> np.ndarray:
    """The model's query vector (d,) for an image."""
    try:
        vecs = model.embed([image], input_type="query")
    except UnsupportedInput as e:
        raise QueryError(text_only_message(model)) from e
    return checked_vectors(vecs, model.info.dimension, 1)[0]
