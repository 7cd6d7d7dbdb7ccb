"""Zero-shot tagging: compare an image with text prompts for each attribute value in the shared space."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from tailorgen.encoders.base import ImageEncoder, TextEncoder, l2_normalize


class ZeroShotTagger:
    """Pick, per attribute, the value whose (averaged) prompt embedding is closest to the image.

    ``vocabulary``: {attribute: {value: [prompt, ...]}}, e.g. world.attributes.prompt_vocabulary().
    """

    def __init__(
        self, image_encoder: ImageEncoder, text_encoder: TextEncoder, vocabulary: dict[str, dict[str, list[str]]]
    ):
        self.image_encoder = image_encoder
        self.vocabulary = vocabulary
        self.values: dict[str, list[str]] = {}
        self.prototypes: dict[str, np.ndarray] = {}
        for attr, by_value in vocabulary.items():
            self.values[attr] = list(by_value)
            protos = [text_encoder.encode(prompts).mean(axis=0) for prompts in by_value.values()]
            self.prototypes[attr] = l2_normalize(np.stack(protos))

    def scores_from_embeddings(self, image_embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Cosine similarity of each image to each value's prototype: {attribute: (N, n_values)}."""
        return {attr: image_embeddings @ protos.T for attr, protos in self.prototypes.items()}

    def predict_from_embeddings(self, image_embeddings: np.ndarray) -> dict[str, list[str]]:
        return {
            attr: [self.values[attr][j] for j in s.argmax(axis=1)]
            for attr, s in self.scores_from_embeddings(image_embeddings).items()
        }

    def predict(self, images: Sequence[Image.Image], batch_size: int = 256) -> dict[str, list[str]]:
        return self.predict_from_embeddings(self.image_encoder.encode(images, batch_size=batch_size))
