"""Tokenizers for the unified model, and serialized pieces as token ids with their answer mask.

The embedded default trains a small byte-level BPE (HF ``tokenizers``, saved and loaded as a
``PreTrainedTokenizerFast``) on the dataset's own texts: a shop's language is a few hundred words,
and a 49k-token pretrained vocabulary would spend most of a small model's compute on its output
layer. A pretrained causal LM keeps its own tokenizer; either way the special tokens of
``unified.vocab`` and the item names are added as single tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tailorgen.unified.serialize import Piece
from tailorgen.unified.vocab import END_OF_CHUNK, IMAGE, PAD, RATING_TOKENS, STRUCTURE_TOKENS, image_code_tokens


def special_tokens(item_tokens: Sequence[str], image_codes: int = 0) -> list[str]:
    return [*STRUCTURE_TOKENS, *RATING_TOKENS, *item_tokens, *image_code_tokens(image_codes)]


def train_tokenizer(corpus: Iterable[str], item_tokens: Sequence[str], vocab_size: int = 1024, image_codes: int = 0):
    """A byte-level BPE trained on ``corpus``, with the special tokens, item names and ``image_codes``
    image code tokens added whole."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=END_OF_CHUNK)
    return extend_tokenizer(fast, item_tokens, image_codes)


def extend_tokenizer(tokenizer, item_tokens: Sequence[str], image_codes: int = 0):
    """Add the unified model's special tokens and item names (each one token) to any HF tokenizer.

    Each one absorbs the spaces around it (``lstrip``/``rstrip``), so ``<item_3> <rate_5> Love it``
    is three tokens and "Love", never a space token between two names that decoding would have to
    predict (a semantic id's codes must follow each other directly).
    """
    from tokenizers import AddedToken

    added = [
        AddedToken(t, special=True, lstrip=True, rstrip=True, normalized=False)
        for t in special_tokens(item_tokens, image_codes)
    ]
    tokenizer.add_tokens(added, special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD
    return tokenizer


@dataclass
class Encoded:
    """One serialized sequence: token ids, which positions are answer tokens, and the items whose
    images fill the ``<image>`` slots in order."""

    input_ids: np.ndarray
    answer: np.ndarray  # bool per position: this token is an answer token (the loss reads it)
    task_answer: np.ndarray  # bool per position: ... of the task's own answer (not the history's)
    images: tuple[str, ...]


class PieceEncoder:
    """Token ids of pieces, each piece tokenized on its own (so answer spans are exact), cached."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE)
        self._cache: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        out = self._cache.get(text)
        if out is None:
            out = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(self._cache) < 500_000:
                self._cache[text] = out
        return out

    def encode(self, pieces: Sequence[Piece], max_length: int | None = None) -> Encoded:
        ids, answer, images = [], [], []
        for p in pieces:
            t = self.ids(p.text)
            ids += t
            answer += [p.answer] * len(t)
            images += p.images
        task_answer = np.zeros(len(ids), bool)
        if pieces and pieces[-1].answer:
            task_answer[len(ids) - len(self.ids(pieces[-1].text)) :] = True
        ids, answer = np.asarray(ids, np.int64), np.asarray(answer, bool)
        if max_length is not None and len(ids) > max_length:
            # Cut from the left (the oldest history), and drop the images whose slot was cut.
            cut = len(ids) - max_length
            images = images[int((ids[:cut] == self.image_id).sum()) :]
            ids, answer, task_answer = ids[cut:], answer[cut:], task_answer[cut:]
        if int((ids == self.image_id).sum()) != len(images):
            raise ValueError(
                f"{int((ids == self.image_id).sum())} <image> slots but {len(images)} images in the pieces"
            )
        return Encoded(ids, answer, task_answer, tuple(images))
