"""The unified model's special tokens, and how an item, a rating and (next issue) an image code are named.

Every special token is written ``<...>`` and added to the tokenizer as one token, so the serializer
can write plain strings and the tokenizer never splits them. Item tokens are named by the item's
*position* in the model's item table (``<item_17>``), never by its id: ids are data and may hold
any text (docs/data.md), while a token must be one clean word. The table (``item_ids.json`` beside
the weights) maps positions back to ids.

Groups of tokens live in disjoint ranges of the vocabulary, so "only an item", "only a rating" or
"only an image code" is a set of token ids that constrained decoding can allow. The image codes
(``<img_{i}>``, a VQ tokenizer's book) are one more group: an image is written as its codes in
raster order, and only codes may stand inside an image's span.
"""

from __future__ import annotations

IMAGE = "<image>"  # one slot per item image: its embedding replaces this token's (unified.model)
ANSWER = "<answer>"  # what follows, up to and including END_OF_CHUNK, is what the loss reads
END_OF_CHUNK = "<|endofchunk|>"
PAD = "<pad>"
STRUCTURE_TOKENS = (PAD, IMAGE, ANSWER, END_OF_CHUNK)

RATINGS = (1, 2, 3, 4, 5)


def rating_token(rating: int) -> str:
    if rating not in RATINGS:
        raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
    return f"<rate_{rating}>"


RATING_TOKENS = tuple(rating_token(r) for r in RATINGS)


def item_token(position: int) -> str:
    """The one-token id of the item at ``position`` of the model's item table."""
    return f"<item_{int(position)}>"


def code_token(level: int, code: int) -> str:
    """A semantic-id code: ``level`` is the residual quantizer's stage (the last one disambiguates)."""
    return f"<sid_{int(level)}_{int(code)}>"


def image_code_token(code: int) -> str:
    """A code of the VQ image tokenizer's book."""
    return f"<img_{int(code)}>"


def image_code_tokens(codebook_size: int) -> list[str]:
    return [image_code_token(c) for c in range(int(codebook_size))]


def round_rating(value: float) -> int:
    """A dataset's rating (any real number on a 1..5 scale, e.g. MovieLens' halves) as a rating token's
    number: rounded half up and clipped to 1..5."""
    return int(min(max(int(value + 0.5), RATINGS[0]), RATINGS[-1]))
