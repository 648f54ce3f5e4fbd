"""Which embedding models this machine can use right now, by name."""

from __future__ import annotations

from dataclasses import dataclass

from . import onnx_local, voyage
from .base import EmbeddingModel, ModelInfo, ModelUnavailable
from .local import CLIP, CLIP_HOWTO, MINILM, SentenceTransformerModel, clip_path, minilm_path

VOYAGE_NAME = voyage.MODEL_NAME


@dataclass(frozen=True)
class ModelChoice:
    """A model the app knows, whether it can be used here, and if not, how to make it usable."""

    info: ModelInfo
    available: bool
    howto: str = ""


VOYAGE = voyage.model_info()


def model_choices() -> list[ModelChoice]:
    """Every model the app knows, available ones first, the default first of all."""
    choices = [ModelChoice(MINILM, True)]
    for spec in onnx_local.SPECS.values():
        have = onnx_local.model_path(spec.info.name) is not None
        choices.append(
            ModelChoice(spec.info, have, "" if have else onnx_local.howto(spec.info.name))
        )
    have_clip = clip_path() is not None
    choices.append(ModelChoice(CLIP, have_clip, "" if have_clip else CLIP_HOWTO))
    have_key = voyage.available()
    choices.append(
        ModelChoice(
            VOYAGE,
            have_key,
            "" if have_key else "Set VOYAGE_API_KEY (from dash.voyageai.com) before `make run`.",
        )
    )
    return sorted(choices, key=lambda c: not c.available)


def default_model_name() -> str:
    """The model the app starts with: the lesson's Voyage model when a key is set, else MiniLM."""
    if voyage.available():
        return VOYAGE_NAME
    return MINILM.name


def load_model(name: str) -> EmbeddingModel:
    """A ready-to-use model object (weights load lazily, on first `embed`)."""
    if name == MINILM.name:
        return SentenceTransformerModel(MINILM, minilm_path())
    if name in onnx_local.SPECS:
        return onnx_local.load(name)
    if name == CLIP.name:
        path = clip_path()
        if path is None:
            raise ModelUnavailable(CLIP_HOWTO)
        return SentenceTransformerModel(CLIP, path)
    if name == VOYAGE_NAME:
        return voyage.VoyageModel()
    raise KeyError(f"unknown model {name!r}")
