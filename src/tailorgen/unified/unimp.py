"""``UniMP``: a trained unified model over one dataset, answering its four tasks for any user.

    unimp = UniMP(Dataset("runs/demo/shop"))              # the shipped model for the demo shop
    unimp.recommend(["u007"], k=10)                          # [[(item, log-prob), ...]]
    unimp.search("u007", "red striped dress", k=10)
    unimp.rate("u007", "i0042")                              # (expected rating, P(1..5))
    unimp.explain("u007", "i0042")                           # a review-like sentence
    unimp.imagine("u007", "red stripes dress", n=4)          # 4 PIL images drawn for the user

A user's history is every interaction the dataset holds for them, in time order (the model reads
the last ``max_history``). The model's item table must be the dataset's catalog: a model names
items by their place in the table it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tailorgen.data import Dataset, UnknownIdError
from tailorgen.unified.batch import ImageFeatures
from tailorgen.unified.content import item_content
from tailorgen.unified.decode import Decoder
from tailorgen.unified.model import UnifiedModel
from tailorgen.unified.sample import SamplingSettings
from tailorgen.unified.serialize import Event, Example, Serializer
from tailorgen.unified.tasks import events_by_user

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "unimp"


@dataclass
class Imagined:
    """Images drawn for one request, with their codes (n, tokens) and each image's log-probability."""

    images: list
    codes: torch.Tensor
    log_probs: torch.Tensor
    settings: SamplingSettings
    seed: int


class UniMP:
    def __init__(
        self, dataset: Dataset, model_dir: str | Path | None = None, device: str = "cpu", progress: bool = False
    ):
        self.dataset, self.model_dir = dataset, Path(model_dir or SHIPPED)
        self.model = UnifiedModel.from_pretrained(self.model_dir, device=device)
        content = item_content(dataset, with_images=self.model.config.with_images, progress=progress)
        missing = [i for i in self.model.ids.item_ids if i not in content.texts]
        if missing:
            raise ValueError(
                f"{self.model_dir}: the model's item table names {len(missing)} items that {dataset.root} lacks "
                f"(first: {missing[0]!r}); a unified model answers for the catalog it was trained on"
            )
        self.serializer = Serializer(
            content.texts,
            self.model.ids,
            self.model.config.max_history,
            content.has_images and self.model.config.with_images,
        )
        images = ImageFeatures(content.item_ids, content.image_vectors, dim=content.image_dim)
        self.decoder = Decoder(self.model, self.serializer, images, progress=progress)
        self.histories: dict[str, list[Event]] = {
            u: [e for _, e in ev] for u, ev in events_by_user(dataset.interactions.to_pylist()).items()
        }

    def history(self, user: str) -> list[Event]:
        if user not in self.histories:
            raise UnknownIdError(
                "user", user, str(self.dataset.root / "interactions.parquet"), sorted(self.histories)[:5]
            )
        return self.histories[user]

    def _item(self, item: str) -> str:
        if item not in self.model.ids.position:
            raise UnknownIdError("item", item, str(self.dataset.root / "items.parquet"), self.model.ids.item_ids[:5])
        return item

    def recommend(
        self, users: Sequence[str], k: int = 10, exclude_history: bool = True
    ) -> list[list[tuple[str, float]]]:
        examples = [Example(u, "recommendation", tuple(self.history(u)), "") for u in users]
        exclude = [[e.item for e in ex.history] for ex in examples] if exclude_history else None
        return self.decoder.rank_items(examples, k, exclude)

    def search(self, user: str, query: str, k: int = 10) -> list[tuple[str, float]]:
        if not query or not query.strip():
            raise ValueError("query: empty; give the words to search for")
        ex = Example(user, "search", tuple(self.history(user)), "", query=query.strip())
        return self.decoder.rank_items([ex], k)[0]

    def rate(self, user: str, item: str) -> tuple[float, np.ndarray]:
        ex = Example(user, "rating", tuple(self.history(user)), self._item(item))
        expected, dist = self.decoder.rate([ex])
        return float(expected[0]), dist[0]

    def explain(self, user: str, item: str) -> str:
        return self.decoder.explain([Example(user, "explanation", tuple(self.history(user)), self._item(item))])[0]

    def imagine(
        self, user: str, keywords: str, n: int = 4, settings: SamplingSettings = SamplingSettings(), seed: int = 0
    ) -> Imagined:
        """``n`` images of an item for ``user`` that fits ``keywords`` (history + keywords -> codes -> pixels)."""
        ex = Example(user, "image_generation", tuple(self.history(user)), "", query=" ".join(keywords.split()))
        codes, logps = self.decoder.imagine([ex], n, settings, seed)
        images = self.model.vq.to_pil(self.decoder.pixels(codes[0]))
        return Imagined(images, codes[0], logps[0].sum(-1), settings, seed)
