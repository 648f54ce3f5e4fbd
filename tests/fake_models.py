"""Test doubles of EmbeddingModel: a tiny multimodal model that embeds by colour.

Texts are embedded by the colour words they contain, images by their mean colour, into one
4-d space (red, green, blue, a constant): "a red apple" lands near a red photo. Good enough
to drive the image path end to end where no real image model is installed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from lib.core.embeddings.base import ModelInfo, checked_vectors, modality_of, require_modalities

WORDS = {"red": 0, "green": 1, "blue": 2}


class ColourModel:
    def __init__(self, modalities=("text", "image"), name="fake-colour"):
        self.info = ModelInfo(
            name=name,
            dimension=4,
            modalities=frozenset(modalities),
            normalized=True,
            description="test double: embeds by colour",
        )

    def embed(self, inputs, *, input_type="document"):
        require_modalities(self.info, inputs)
        out = np.zeros((len(inputs), 4), dtype=np.float32)
        for i, x in enumerate(inputs):
            if modality_of(x) == "text":
                for word, axis in WORDS.items():
                    out[i, axis] = x.lower().count(word)
            else:
                rgb = np.asarray(x.convert("RGB").resize((8, 8)), dtype=np.float32)
                out[i, :3] = rgb.reshape(-1, 3).mean(axis=0) / 255.0
            out[i, 3] = 0.2
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return checked_vectors(out, 4, len(inputs))


def solid(colour: tuple[int, int, int], size=(32, 32)) -> Image.Image:
    return Image.new("RGB", size, colour)
