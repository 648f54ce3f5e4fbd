"""Vectors for the fake Voyage API that make sense on a map. Test only: never Voyage's own.

The browser test of the image path (tests/test_image_path_browser.py) needs a multimodal
backend, and no image model can be installed here. So the fake of the API
(tests/voyage_fake.py) answers with these:

- a text: all-MiniLM-L6-v2's vector of it (384-d, the real local model), carried into the
  requested dimension by a fixed random orthonormal map, which keeps every cosine;
- an image: if it shows one of the corpus photos (recognised by its pixels, also when scaled
  or re-encoded), the vector of that photo's caption plus a little noise seeded by its
  pixels, so that a photo lands next to its caption and its theme, as a multimodal model
  would put it; any other image gets the fake's random vector (`fake_vector`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np
from PIL import Image
from voyage_fake import decode_data_url, fake_vector

from lib.core.corpus import CorpusItem
from lib.core.embeddings.local import MINILM
from lib.core.embeddings.registry import load_model

MATCH = 0.95  # correlation of two 16×16 grey thumbnails above which they are the same photo
NOISE = 0.25  # size of the pixel-seeded noise added to a photo's caption vector


def fingerprint(image: Image.Image) -> np.ndarray:
    """A 16×16 grey thumbnail, centred and scaled to unit length."""
    grey = image.convert("L").resize((16, 16), Image.Resampling.BILINEAR)
    g = np.asarray(grey, dtype=np.float64).ravel()
    g -= g.mean()
    norm = np.linalg.norm(g)
    return g / norm if norm else g


class MapVectors:
    """The `vectors` function of a FakeVoyage: see the module's docstring."""

    def __init__(self, photos: Sequence[CorpusItem]) -> None:
        self.model = load_model(MINILM.name)
        self.prints = np.stack([fingerprint(p.load_image()) for p in photos])
        self.captions = [p.text for p in photos]
        self.recognised: list[str] = []  # the caption of every photo recognised, in order
        self._lock = threading.Lock()
        self._maps: dict[int, np.ndarray] = {}

    def _map(self, dimension: int) -> np.ndarray:
        if dimension not in self._maps:
            rng = np.random.default_rng(dimension)
            q, _ = np.linalg.qr(rng.standard_normal((dimension, MINILM.dimension)))
            self._maps[dimension] = q
        return self._maps[dimension]

    def caption_of(self, image: Image.Image) -> str | None:
        scores = self.prints @ fingerprint(image)
        best = int(np.argmax(scores))
        return self.captions[best] if scores[best] >= MATCH else None

    def __call__(
        self, contents: list[list[dict[str, str]]], dimension: int, input_type: str | None
    ) -> np.ndarray:
        with self._lock:
            out = np.empty((len(contents), dimension))
            texts: dict[int, str] = {}
            noise: dict[int, np.ndarray] = {}
            for i, content in enumerate(contents):
                piece = content[0]
                if piece["type"] == "text":
                    texts[i] = piece["text"]
                    continue
                image = decode_data_url(piece["image_base64"])
                caption = self.caption_of(image)
                if caption is None:
                    out[i] = fake_vector(content, dimension, input_type)
                    continue
                self.recognised.append(caption)
                texts[i] = caption
                seed = int.from_bytes(hashlib.sha256(image.tobytes()).digest()[:8], "little")
                noise[i] = np.random.default_rng(seed).standard_normal(MINILM.dimension)
            if texts:
                small = self.model.embed(list(texts.values()), input_type="document")
                for (i, _), v in zip(texts.items(), small, strict=True):
                    v = v.astype(np.float64)
                    if i in noise:
                        v = v + NOISE * noise[i] / np.linalg.norm(noise[i])
                    out[i] = self._map(dimension) @ (v / np.linalg.norm(v))
            return out
