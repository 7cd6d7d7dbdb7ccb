"""The conditioning sequence the generator's cross-attention reads: [text | image | interest] tokens.

- text: token-level states of the (rewritten) item text from the frozen text encoder, projected;
- image: the target item's image embedding, expanded to a few tokens;
- interest: the fusion module's interest tokens from the retrieved text and image neighbours
  and, with ``history_images > 0``, the user's most recent history images, which a small CNN
  reads from their pixels. Why pixels: the frozen image encoder (LiT into MiniLM's text space)
  is blind to accent colours (zero-shot 1% on the second colour, chance 8%), so neither the
  rewrite's tags nor the retrieved neighbours can say which second colour the user favours; the
  pixels of the last 8 items name it (their most frequent second colour is the one the whole
  history shows most, recency-weighted, in 70% of training requests: benchmarks/probe_conditions.py).
  With ``accent_token`` the segment ends with one more token: the accent colour the user's whole
  history shows most, computed from the items' pixels without labels
  (``interests.accent.history_accent``). A colour the UNet can paint wants little reading: the
  token is an MLP of the colour itself, where the history CNN has to learn the accent through
  the denoising loss and holds it poorly (docs/benchmarks.md).

The two options are the conditioner's part of the generator's ``ConditionSpec``
(``generation.spec``); the shipped generator reads 8 history images and the accent token.

Each segment gets a learned type embedding. For classifier-free guidance and for the I-AM-G
ablations, any segment can be dropped per sample: its tokens are replaced by a learned null
token, so "no user information" is something the model has seen in training.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from tailorgen.fusion import InterestAttention
from tailorgen.interests.accent import HISTORY_ACCENT_DIM

SEGMENTS = ("text", "image", "interest")


class PersonalizationConditioner(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        embed_dim: int = 384,
        cross_attention_dim: int = 256,
        n_image_tokens: int = 2,
        max_neighbours: int = 8,
        fusion_heads: int = 4,
        text_dim: int | None = None,
        project_text: bool = True,
        history_images: int = 0,
        accent_token: bool = False,
    ):
        super().__init__()
        d = cross_attention_dim
        text_dim = text_dim or embed_dim
        if project_text:
            self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, d))
        elif text_dim != d:
            raise ValueError(f"project_text=False needs text_dim == cross_attention_dim, got {text_dim} and {d}")
        else:
            # A pretrained UNet (Stable Diffusion) was trained on its text encoder's raw states: keep them.
            self.text_proj = nn.Identity()
        self.image_proj = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, n_image_tokens * d))
        self.fusion = InterestAttention(
            embed_dim=embed_dim, token_dim=d, num_heads=fusion_heads, max_neighbours=max_neighbours
        )
        self.history_encoder = None
        if history_images:
            # Three stride-2 convolutions (32 px -> 4 px) and a mean over positions: colour and texture, not layout.
            self.history_encoder = nn.Sequential(
                nn.Conv2d(3, 32, 3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(64, 128, 3, stride=2, padding=1),
                nn.GELU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(128, d),
            )
            self.history_position = nn.Embedding(history_images, d)  # most recent first
        self.accent_proj = None
        if accent_token:
            self.accent_proj = nn.Sequential(nn.Linear(HISTORY_ACCENT_DIM, d), nn.GELU(), nn.Linear(d, d))
        self.segment = nn.Embedding(len(SEGMENTS), d)
        self.null = nn.Parameter(torch.zeros(len(SEGMENTS), d))
        nn.init.normal_(self.null, std=0.02)

    def forward(
        self,
        text_tokens: torch.Tensor,  # (B, L, embed_dim) token states of the rewritten text
        text_mask: torch.Tensor,  # (B, L) True for real tokens
        image_embedding: torch.Tensor,  # (B, embed_dim) the target item's image embedding
        text_neighbours: torch.Tensor,  # (B, K, embed_dim)
        image_neighbours: torch.Tensor,  # (B, K, embed_dim)
        drop: torch.Tensor | None = None,  # (B, 3) True where that segment is dropped
        history_pixels: torch.Tensor | None = None,  # (B, H, 3, S, S) in [-1, 1], most recent first
        history_mask: torch.Tensor | None = None,  # (B, H) True for real images (a short history pads)
        history_accent: torch.Tensor | None = None,  # (B, 5) interests.accent.history_accent per request
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (tokens (B, L + n_image + K [+ 1], D), attention mask of the same length)."""
        b = text_tokens.shape[0]
        text = self.text_proj(text_tokens)
        image = self.image_proj(image_embedding).view(b, self.config.n_image_tokens, self.config.cross_attention_dim)
        interest, interest_mask = self.interest_tokens(
            text_neighbours, image_neighbours, history_pixels, history_mask, history_accent
        )
        segments = (
            (text, text_mask.bool()),
            (image, torch.ones(b, image.shape[1], dtype=torch.bool, device=image.device)),
            (interest, interest_mask),
        )
        parts, masks = [], []
        for s, (tokens, mask) in enumerate(segments):
            tokens = tokens + self.segment.weight[s]
            if drop is not None and drop[:, s].any():
                tokens, mask = self._drop(s, tokens, mask, drop[:, s])
            parts.append(tokens)
            masks.append(mask)
        return torch.cat(parts, dim=1), torch.cat(masks, dim=1)

    def interest_tokens(self, text_neighbours, image_neighbours, history_pixels, history_mask, history_accent):
        """The interest segment: the fusion's K tokens (reading the history images too), then the accent token."""
        b, d = text_neighbours.shape[0], self.config.cross_attention_dim
        history = history_padding = None
        if self.history_encoder is not None:
            if history_pixels is None or history_mask is None:
                raise ValueError(
                    "this conditioner reads the user's recent history images: give history_pixels and history_mask"
                )
            h = history_pixels.shape[1]
            history = self.history_encoder(history_pixels.flatten(0, 1)).view(b, h, d)
            history = history + self.history_position.weight[:h]
            history_padding = ~history_mask.bool()
        elif history_pixels is not None:
            raise ValueError("this conditioner has no history encoder (history_images=0): leave history_pixels out")
        interest = self.fusion(
            text_neighbours, image_neighbours, extra_image_tokens=history, extra_padding=history_padding
        )
        mask = torch.ones(b, interest.shape[1], dtype=torch.bool, device=interest.device)
        if self.accent_proj is not None:
            if history_accent is None:
                raise ValueError("this conditioner reads the user's history accent: give history_accent")
            interest = torch.cat([interest, self.accent_proj(history_accent.float())[:, None]], dim=1)
            mask = torch.cat([mask, mask[:, :1]], dim=1)
        elif history_accent is not None:
            raise ValueError("this conditioner has no accent token (accent_token=False): leave history_accent out")
        return interest, mask

    def _drop(self, s: int, tokens: torch.Tensor, mask: torch.Tensor, dropped: torch.Tensor):
        """A dropped segment becomes one null token; the rest of its slots are masked out."""
        null_tokens = torch.zeros_like(tokens)
        null_tokens[:, 0] = self.null[s] + self.segment.weight[s]
        null_mask = torch.zeros_like(mask)
        null_mask[:, 0] = True
        tokens = torch.where(dropped[:, None, None], null_tokens, tokens)
        return tokens, torch.where(dropped[:, None], null_mask, mask)
