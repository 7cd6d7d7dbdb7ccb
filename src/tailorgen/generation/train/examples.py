"""Which examples the generator learns from, and the (source, target) images of each.

For a user and their j-th item y:
- "personalize" (the I-AM-G task): the source item x is another catalog item of y's category;
  the conditions are x's rewritten text (x's text + the user's top tags from items before y),
  x's image embedding and the neighbours retrieved for (user, x), and x's pixels. The target is
  x's garment in the look the user's history before y shows: per look attribute (colour,
  pattern, second colour) the value with the largest recency-weighted count (``history_look``).
  That is what x would be had it been made the way this user mostly chooses. A dataset that
  can draw that counterfactual (a simulated shop: ``DatasetKnowledge.render_looks``) draws it;
  any other falls back to y's own image as the target. The next item's own look was the target
  once, and a single choice shares the user's dominant colour only about a quarter of the time,
  so the model learned the catalog's looks, not the user's (docs/benchmarks.md, "Why no gain").
- "reconstruct": x = y with x's plain text and no interest tokens; the target is x itself, so
  without user information the model renders the item as it is.
"""

from __future__ import annotations

import numpy as np

from tailorgen.encoders.image import rgb_array
from tailorgen.interests import recency_weights
from tailorgen.world.knowledge import LOOK, DatasetKnowledge, Look

IMAGE_SIZE = 32
Example = tuple[str, str, str, list[str], str]  # (user, source item, target item, history before it, kind)


def pick_examples(ctx, n: int, p_reconstruct: float, min_history: int, rng: np.random.Generator) -> list[Example]:
    """``n`` (user, source, target, history before the target, kind) tuples from the users' histories."""
    items = ctx.dataset.items.select(["item_id", "category"]).to_pydict()
    by_category: dict[str, list[str]] = {}
    for i, c in zip(items["item_id"], items["category"]):
        by_category.setdefault(c, []).append(i)
    category = dict(zip(items["item_id"], items["category"]))
    positions = [(u, j) for u, h in ctx.histories.items() for j in range(min_history, len(h))]
    chosen = rng.choice(len(positions), size=min(n, len(positions)), replace=False)
    out = []
    for k in chosen:
        u, j = positions[k]
        h = ctx.histories[u]
        y = h[j]
        if rng.random() < p_reconstruct:
            out.append((u, y, y, h[:j], "reconstruct"))
        else:
            pool = by_category[category[y]]
            x = pool[int(rng.integers(len(pool)))]
            out.append((u, x, y, h[:j], "personalize"))
    return out


def history_look(looks: dict[str, Look], history: list[str], recency_half_life: float | None) -> Look:
    """Per look attribute, the value with the largest recency-weighted count over ``history`` (oldest first).

    The weights are the interest profile's (``interests.recency_weights``), so the target's look
    is the one the rewrite's user tags name whenever those tags are look tags.
    """
    weights = recency_weights(len(history), recency_half_life)
    out = []
    for a in range(len(LOOK)):
        weight: dict[str, float] = {}
        for item, w in zip(history, weights):
            value = looks[item][a]
            weight[value] = weight.get(value, 0.0) + w
        out.append(max(weight, key=weight.__getitem__))  # first-seen value wins a tie: deterministic
    return tuple(out)


class SourceTargetImages:
    """(source, target) uint8 HxWx3 images of an example: counterfactual renders where the dataset can draw them."""

    def __init__(self, knowledge: DatasetKnowledge, seed: int, recency_half_life: float | None = None):
        self.knowledge = knowledge
        self.recency_half_life = recency_half_life
        self.rng = np.random.default_rng([seed, 77])
        self.looks = knowledge.looks  # None: no counterfactuals, catalog images

    @property
    def counterfactual(self) -> bool:
        return self.looks is not None

    def target_looks(self, example: Example) -> list[Look]:
        """The (source, target) looks the renderer draws: the source's own, then the history's (or the target's)."""
        _, x, y, history, kind = example
        look = history_look(self.looks, history, self.recency_half_life) if kind == "personalize" else self.looks[y]
        return [self.looks[x], look]

    def __call__(self, example: Example) -> tuple[np.ndarray, np.ndarray]:
        _, x, y, *_ = example
        if not self.counterfactual:
            dataset = self.knowledge.dataset
            return rgb_array(dataset.load_image(x), IMAGE_SIZE), rgb_array(dataset.load_image(y), IMAGE_SIZE)
        source, target = self.knowledge.render_looks(x, self.target_looks(example), IMAGE_SIZE, self.rng)
        return source, target
