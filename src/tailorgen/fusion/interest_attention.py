"""I-AM-G's interest attention: fuse what the two decoupled retrievers found into interest tokens.

For a target item, the text retriever returns K neighbours' text embeddings and the image
retriever K neighbours' image embeddings. Self-attention over the retrieved texts lets them
agree on what the neighbourhood is about; cross-attention with those texts as queries and the
retrieved images as keys and values pulls in what only the images show (a colour the texts
omit, say). The K outputs are the interest tokens the generator attends to.

A caller may add more keys and values to the cross-attention, already at the token width
(``extra_image_tokens``): the embedded generator can add the user's most recent history images,
read from their pixels (``generation.conditioning``, ``history_images``).
"""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


class InterestAttention(nn.Module, PyTorchModelHubMixin):
    """(B, K, embed_dim) text and image neighbour embeddings -> (B, K, token_dim) interest tokens.

    Masks are True where a neighbour slot is padding (fewer than K results); padded slots
    neither attend nor are attended to, and their output tokens are zeroed.
    """

    def __init__(
        self,
        embed_dim: int = 384,
        token_dim: int = 256,
        num_heads: int = 4,
        max_neighbours: int = 16,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.text_in = nn.Linear(embed_dim, token_dim)
        self.image_in = nn.Linear(embed_dim, token_dim)
        # Retrieval rank matters (the first neighbour is the most similar), so each slot gets an embedding.
        self.rank = nn.Embedding(max_neighbours, token_dim)
        self.norm_self = nn.LayerNorm(token_dim)
        self.self_attn = nn.MultiheadAttention(token_dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_query = nn.LayerNorm(token_dim)
        self.norm_image = nn.LayerNorm(token_dim)
        self.cross_attn = nn.MultiheadAttention(token_dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(token_dim)
        self.ffn = nn.Sequential(nn.Linear(token_dim, 4 * token_dim), nn.GELU(), nn.Linear(4 * token_dim, token_dim))
        self.norm_out = nn.LayerNorm(token_dim)

    def forward(
        self,
        text_neighbours: torch.Tensor,
        image_neighbours: torch.Tensor,
        text_padding: torch.Tensor | None = None,
        image_padding: torch.Tensor | None = None,
        extra_image_tokens: torch.Tensor | None = None,  # (B, M, token_dim) more keys and values
        extra_padding: torch.Tensor | None = None,  # (B, M) True where padding
    ) -> torch.Tensor:
        k_text, k_image = text_neighbours.shape[1], image_neighbours.shape[1]
        ranks = self.rank.weight
        t = self.text_in(text_neighbours) + ranks[:k_text]
        v = self.image_in(image_neighbours) + ranks[:k_image]
        # Self-attention over the retrieved texts (pre-norm residual, as in current transformers).
        h = self.norm_self(t)
        t = t + self.self_attn(h, h, h, key_padding_mask=text_padding, need_weights=False)[0]
        # Cross-attention: text queries, image keys and values.
        if extra_image_tokens is not None:
            m = extra_image_tokens.shape[1]
            if image_padding is None:
                image_padding = torch.zeros(v.shape[:2], dtype=torch.bool, device=v.device)
            if extra_padding is None:
                extra_padding = torch.zeros(v.shape[0], m, dtype=torch.bool, device=v.device)
            v = torch.cat([v, extra_image_tokens], dim=1)
            image_padding = torch.cat([image_padding, extra_padding], dim=1)
        img = self.norm_image(v)
        t = t + self.cross_attn(self.norm_query(t), img, img, key_padding_mask=image_padding, need_weights=False)[0]
        t = t + self.ffn(self.norm_ffn(t))
        out = self.norm_out(t)
        if text_padding is not None:
            out = out.masked_fill(text_padding[..., None], 0.0)
        return out
