"""What a generator reads besides the text, the item's image and the retrieved neighbours: one spec.

The spec is a property of the saved weights: the conditioner's config holds ``history_images``
and ``accent_token``, the UNet's config whether it reads the accent through its class embedding
(``accent_film``). Everything else is derived from it: which inputs the personalization context
computes for a request (``PersonalizationContext(spec=...)``), what the pipeline passes to the
conditioner and the UNet, the training set's arrays, and the modules a training run builds.
So a generator can never be fed conditions it was not trained to read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ConditionSpec:
    # The user's last N history images, read from their 32x32 pixels by a small CNN of the
    # conditioner and given to the interest attention as extra keys and values (0: none, as in
    # the paper). Why pixels: the frozen image encoder is blind to accent colours.
    history_images: int = 0
    # The history accent (``interests.accent.history_accent``: the second colour the user's whole
    # history shows most, read from its pixels) as one more interest token.
    accent_token: bool = False
    # The same vector through the UNet's projection class embedding (a FiLM-like shift of every
    # ResNet block), where the tokens reach only the attention levels.
    accent_film: bool = False

    def __post_init__(self):
        if not isinstance(self.history_images, int) or self.history_images < 0:
            raise ValueError(f"history_images must be an integer >= 0, got {self.history_images!r}")

    @property
    def reads_history_accent(self) -> bool:
        """Whether a request must carry the history accent (for the token, the UNet, or both)."""
        return self.accent_token or self.accent_film

    @classmethod
    def of(cls, unet, conditioner) -> ConditionSpec:
        """What a (unet, conditioner) pair reads, from their saved configs."""
        return cls(
            history_images=int(conditioner.config.get("history_images", 0)),
            accent_token=bool(conditioner.config.get("accent_token", False)),
            accent_film=unet.config.get("class_embed_type") == "projection",
        )

    def to_dict(self) -> dict:
        return asdict(self)
